import { api, type Trip } from "../api/client";
import { LineChart } from "../components/CandleChart";
import { ExitPill } from "../components/Orders";
import { Alert, Card, Empty, Loader, PageHead, Stat, fmt, price, signed, time, tone } from "../components/ui";
import { duration } from "../backtest";
import { useLoad } from "../hooks";
import { Link, navigate } from "../router";
import { dailyBars, equityPoints, exitLabel, tradesOf, tradesPath, tripLink, type TradesOf } from "../trades";
import { CLOCK_NOTE } from "../time";

/** An account's (or an assignment's) trades: its round trips, realized profit per day and equity curve. */
export function TradesPage() {
  const chosen = tradesOf(location.search);
  const traders = useLoad(() => api.traders());
  const assignments = useLoad(() => api.assignments());
  const first = traders.data?.items[0];
  const of: TradesOf | null = chosen ?? (first ? { trader_id: first.id } : null);
  const key = of ? tradesPath(of) : "";
  const data = useLoad(() => (of ? api.trades({ ...of, limit: 200 }) : Promise.resolve(null)), [key]);
  const pick = (e: React.ChangeEvent<HTMLSelectElement>) => {
    const [kind, id] = [e.target.value[0], Number(e.target.value.slice(1))];
    navigate(tradesPath(kind === "a" ? { assignment_id: id } : { trader_id: id }));
  };
  const value = of ? ("trader_id" in of ? `t${of.trader_id}` : `a${of.assignment_id}`) : "";
  const noAccounts = traders.data !== null && traders.data.items.length === 0 && !chosen;
  return (
    <>
      <PageHead title="Trades">
        <select aria-label="Whose trades" data-testid="trades-of" value={value} onChange={pick}>
          {traders.data?.items.length ? <optgroup label="Accounts">
            {traders.data.items.map((t) => <option key={t.id} value={`t${t.id}`}>{t.name} ({t.paper ? "paper" : t.exchange})</option>)}
          </optgroup> : null}
          {assignments.data?.items.length ? <optgroup label="Assignments">
            {assignments.data.items.map((a) => <option key={a.id} value={`a${a.id}`}>Assignment #{a.id} · {a.timeframe}</option>)}
          </optgroup> : null}
        </select>
      </PageHead>
      {noAccounts ? <Card><Empty>No trading account yet: <Link to="/accounts">add one</Link>, then assign a strategy to trade with it.</Empty></Card> : (
        <Loader state={data} empty={(d) => d === null && "Choose an account or an assignment."}>
          {(d) => d && (
            <>
              <div className="stats" data-testid="trade-stats">
                <Stat label="Closed trades" value={d.summary.trades} />
                <Stat label="Win rate" value={d.summary.trades ? `${fmt(d.summary.win_rate, 1)} %` : "—"} />
                <Stat label="Realized P&L" value={signed(d.summary.pnl)} tone={tone(d.summary.pnl)} />
                <Stat label="Profit factor" value={d.summary.trades ? fmt(d.summary.profit_factor) : "—"} />
                <Stat label="Avg trade" value={d.summary.trades ? duration(d.summary.avg_duration_s) : "—"} />
                <Stat label="Fees paid" value={fmt(d.summary.fees)} />
              </div>
              {d.truncated && <Alert>Only the newest {d.fills.toLocaleString("en-US")} fills are counted here; older trades are left out.</Alert>}
              <div className="grid">
                <Card title={d.base === null ? "P&L of these trades" : "Equity"}>
                  {d.equity.length ? <LineChart points={equityPoints(d.equity)} testId="account-equity" base={d.base === null ? 0 : Number(d.base)} />
                    : <Empty>No fills yet.</Empty>}
                  <p className="muted small">{d.base === null
                    ? "A real account's balance is the exchange's: this is what its trades here made, from 0."
                    : d.assignment_id ? `From the assignment's allocation (${fmt(d.base)}), valued at the candles' closes.`
                    : `From the paper account's starting cash (${fmt(d.base)})${d.since ? `, since ${time(d.since)}` : ""}, valued at the candles' closes.`}</p>
                </Card>
                <Card title="Daily profit">
                  <DailyProfit daily={d.daily} />
                </Card>
              </div>
              <Card title={`Round trips (${d.summary.trades + d.summary.open})`}>
                <Trips trips={d.trips} />
                {d.unmatched > 0 && <p className="muted small">{d.unmatched} sell{d.unmatched === 1 ? "" : "s"} of coins bought before the fills shown are left out.</p>}
              </Card>
            </>
          )}
        </Loader>
      )}
    </>
  );
}

function DailyProfit({ daily }: { daily: NonNullable<Awaited<ReturnType<typeof api.trades>>>["daily"] }) {
  if (!daily.length) return <Empty>No fills yet.</Empty>;
  const bars = dailyBars(daily);
  return (
    <>
      <div className="bars" data-testid="daily-bars" aria-hidden>
        {bars.map((b) => <span key={b.day} className={b.up ? "" : "down"} style={{ height: `${b.height}%` }} title={`${b.day}: ${signed(b.pnl)}`} />)}
      </div>
      <div className="scroll-x">
        <table>
          <thead><tr><th>Day (UTC)</th><th className="num">Realized</th><th className="num">Fees</th><th className="num">Fills</th></tr></thead>
          <tbody data-testid="daily">
            {[...bars].reverse().slice(0, 14).map((b) => (
              <tr key={b.day}><td className="nowrap">{b.day}</td><td className={`num ${tone(b.pnl)}`}>{signed(b.pnl)}</td><td className="num">{fmt(b.fees)}</td><td className="num">{b.fills}</td></tr>
            ))}
          </tbody>
        </table>
      </div>
    </>
  );
}

function Trips({ trips }: { trips: Trip[] }) {
  if (!trips.length) return <Empty>No round trip yet: one starts with a buy and ends when the position is sold.</Empty>;
  return (
    <div className="scroll-x">
      <table>
        <thead><tr><th title={CLOCK_NOTE.market}>Entry</th><th>Market</th><th className="num">Entry price</th><th>Exit</th><th className="num">Exit price</th>
          <th>Exit reason</th><th className="num">P&L</th><th className="num">P&L %</th><th className="num hide-sm">Duration</th><th className="num hide-sm">Fees</th></tr></thead>
        <tbody data-testid="round-trips">
          {trips.map((t, i) => {
            const link = tripLink(t);
            return (
              <tr key={i} className={link ? "clickable" : ""} onClick={() => link && navigate(link)} title={link ? "Show this trade on the chart" : undefined} data-testid="round-trip">
                <td className="nowrap">{time(t.entry_time)}</td>
                <td className="nowrap">{t.symbol}{t.assignment_id ? <span className="muted small"> · #{t.assignment_id}</span> : null}</td>
                <td className="num">{price(t.entry_price)}</td>
                <td className="nowrap">{t.exit_time !== null && t.exit_time !== undefined ? time(t.exit_time) : <span className="pill open">open</span>}</td>
                <td className="num">{price(t.exit_price)}</td>
                <td>{t.exit_time !== null && t.exit_time !== undefined && t.exit_reason && t.exit_reason !== "reset" ? <ExitPill reason={t.exit_reason} /> : <span className="muted">{exitLabel(t)}</span>}</td>
                <td className={`num ${tone(t.pnl)}`}>{signed(t.pnl)}</td>
                <td className={`num ${tone(t.pnl_pct)}`}>{t.pnl_pct !== null && t.pnl_pct !== undefined ? `${signed(t.pnl_pct)} %` : "—"}</td>
                <td className="num hide-sm nowrap">{duration(t.duration_s)}</td>
                <td className="num hide-sm">{fmt(t.fees, 4)}</td>
              </tr>
            );
          })}
        </tbody>
      </table>
    </div>
  );
}
