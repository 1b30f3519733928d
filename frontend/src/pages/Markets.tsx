import { useState } from "react";
import { api } from "../api/client";
import { Card, Empty, Loader, PageHead, price } from "../components/ui";
import { useLoad, useThrottled } from "../hooks";
import { Link } from "../router";
import { priceKey, type LiveState } from "../stream";

/** Every market the exchanges trade, with its live price and how many of your assignments trade it. */
export function Markets({ live }: { live: LiveState }) {
  const tick = useThrottled(live.activity, 2000);
  const markets = useLoad(() => api.markets());
  const assignments = useLoad(() => api.assignments(), [tick]);
  const [filter, setFilter] = useState("");
  const mine = new Map<number, { running: number; all: number }>();
  for (const a of assignments.data?.items ?? []) {
    const n = mine.get(a.market_id) ?? { running: 0, all: 0 };
    mine.set(a.market_id, { running: n.running + (a.enabled ? 1 : 0), all: n.all + 1 });
  }
  const words = filter.trim().toLowerCase().split(/\s+/).filter(Boolean);
  return (
    <>
      <PageHead title="Markets">
        <input type="search" name="market-filter" aria-label="Filter markets" placeholder="Filter: BTC, sim…" value={filter} onChange={(e) => setFilter(e.target.value)} />
      </PageHead>
      <Card>
        <Loader state={markets} empty={(d) => d.items.length === 0 && "No markets yet: the exchanges are starting."}>
          {(d) => {
            const shown = d.items.filter((m) => words.every((w) => `${m.exchange} ${m.symbol}`.toLowerCase().includes(w)));
            if (!shown.length) return <Empty>No market matches “{filter.trim()}”.</Empty>;
            return (
              <div className="scroll-x">
                <table>
                  <thead><tr><th>Market</th><th>Exchange</th><th className="num">Last price</th><th>Your assignments</th></tr></thead>
                  <tbody data-testid="markets">
                    {shown.map((m) => {
                      const key = priceKey(m.exchange, m.symbol);
                      const n = mine.get(m.id);
                      return (
                        <tr key={m.id}>
                          <td><Link to={`/markets/${m.id}`}>{m.symbol}</Link></td>
                          <td className="muted">{m.exchange}</td>
                          <td className="num price">{price(live.prices[key] ?? m.last_price)}</td>
                          <td>{n ? `${n.running} running of ${n.all}` : <span className="muted">none</span>}</td>
                        </tr>
                      );
                    })}
                  </tbody>
                </table>
              </div>
            );
          }}
        </Loader>
      </Card>
    </>
  );
}
