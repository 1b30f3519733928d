import { lazy, Suspense, useCallback, useEffect, useReducer, useRef, useState } from "react";
import { api, onUnauthorized, type User } from "./api/client";
import { afterLogin, AUTH_PAGES, Link, navigate, usePath } from "./router";
import { connectStream, initialLive, reduceLive, type MarketFilter, type StreamConnection, type StreamEvent, type StreamStatus } from "./stream";
import { Login } from "./pages/Login";
import { Dashboard } from "./pages/Dashboard";
import { Markets } from "./pages/Markets";
import { StrategyList } from "./pages/Strategies";
import { Accounts } from "./pages/Accounts";
import { Assignments } from "./pages/Assignments";
import { Alerts } from "./pages/Alerts";
import { Toasts } from "./components/Toasts";

// The editor (CodeMirror) and the charts (lightweight-charts) are most of the code: load them when first needed.
const StrategyEditor = lazy(() => import("./pages/StrategyEditor").then((m) => ({ default: m.StrategyEditor })));
const MarketPage = lazy(() => import("./pages/Market").then((m) => ({ default: m.MarketPage })));
const Backtests = lazy(() => import("./pages/Backtests").then((m) => ({ default: m.Backtests })));
const Studies = lazy(() => import("./pages/Research").then((m) => ({ default: m.Studies })));
const StudyPage = lazy(() => import("./pages/Research").then((m) => ({ default: m.StudyPage })));
const BacktestPage = lazy(() => import("./pages/Backtests").then((m) => ({ default: m.BacktestPage })));
const RunsPage = lazy(() => import("./pages/Runs").then((m) => ({ default: m.RunsPage })));
const ComparePage = lazy(() => import("./pages/Runs").then((m) => ({ default: m.ComparePage })));
const WalkForwards = lazy(() => import("./pages/WalkForward").then((m) => ({ default: m.WalkForwards })));
const WalkForwardPage = lazy(() => import("./pages/WalkForward").then((m) => ({ default: m.WalkForwardPage })));
const TradesPage = lazy(() => import("./pages/Trades").then((m) => ({ default: m.TradesPage })));
import { Card, Loading } from "./components/ui";
import { KillDialog } from "./components/Close";

export type Subscribe = (f: (ev: StreamEvent) => void) => () => void;
/** Choose the markets whose candles and ticks the socket receives ([]: every market's candles, no ticks). */
export type Watch = (filters: MarketFilter[]) => void;

const NAV: [string, string][] = [["/", "Dashboard"], ["/markets", "Markets"], ["/strategies", "Strategies"], ["/assignments", "Assignments"], ["/trades", "Trades"], ["/backtests", "Backtests"], ["/research", "Research"], ["/accounts", "Accounts"], ["/alerts", "Alerts"]];

export function App() {
  const [user, setUser] = useState<User | null | undefined>(undefined);
  const path = usePath();
  const [live, dispatch] = useReducer(reduceLive, initialLive);
  const [status, setStatus] = useState<StreamStatus>("connecting");
  const [menu, setMenu] = useState(false);
  const [askKill, setAskKill] = useState(false); // the kill switch's confirmation (with its flatten option)
  const [killNote, setKillNote] = useState<string | null>(null); // what the kill switch's flatten did
  const listeners = useRef(new Set<(ev: StreamEvent) => void>());
  const subscribe = useCallback<Subscribe>((f) => {
    listeners.current.add(f);
    return () => { listeners.current.delete(f); };
  }, []);
  const conn = useRef<StreamConnection | null>(null);
  const watched = useRef<MarketFilter[] | null>(null); // kept for a new socket (after logging in again)
  const watch = useCallback<Watch>((filters) => {
    watched.current = filters;
    conn.current?.subscribe(filters);
  }, []);

  useEffect(() => {
    onUnauthorized(() => setUser(null));
    api.me().then(setUser).catch(() => setUser(null));
  }, []);
  useEffect(() => {
    if (!user) return;
    const c = connectStream((ev) => { dispatch(ev); listeners.current.forEach((f) => f(ev)); },
      { onStatus: setStatus, onSessionEnded: () => setUser(null) });
    if (watched.current) c.subscribe(watched.current);
    conn.current = c;
    return () => { conn.current = null; c(); };
  }, [user?.id]); // eslint-disable-line react-hooks/exhaustive-deps
  useEffect(() => setMenu(false), [path]);
  // Logged in at /login (just now, or by a bookmark or the back button): on to the page asked for.
  const atAuthPage = AUTH_PAGES.has(path);
  useEffect(() => {
    if (user && atAuthPage) navigate(afterLogin(location.search), { replace: true });
  }, [user, atAuthPage]);

  if (user === undefined || (user && atAuthPage)) return <div className="boot"><Loading /></div>;
  if (user === null) return <Login key={path} onDone={setUser} register={path === "/register"} />;

  const toggleKill = async () => {
    if (!user.killed) {
      setAskKill(true);
      return;
    }
    await api.unkill();
    setKillNote(null);
    setUser(await api.me());
  };
  const killed = async (r: { closed?: { status: string }[] | null; flatten_error?: string | null }) => {
    setAskKill(false);
    const closing = (r.closed ?? []).filter((c) => c.status === "placed" || c.status === "closing").length;
    setKillNote(r.flatten_error ? `Positions not closed: ${r.flatten_error}` : r.closed ? `Closing ${closing} position${closing === 1 ? "" : "s"} at the market.` : null);
    setUser(await api.me());
  };

  let page: React.ReactNode;
  let m: RegExpMatchArray | null;
  if (path === "/" || path === "") page = <Dashboard live={live} />;
  else if (path === "/strategies") page = <StrategyList />;
  else if (path === "/strategies/new") page = <StrategyEditor id={null} />;
  else if ((m = path.match(/^\/strategies\/(\d+)$/))) page = <StrategyEditor key={m[1]} id={Number(m[1])} />;
  else if (path === "/accounts") page = <Accounts />;
  else if (path === "/trades") page = <TradesPage key={location.search} />;
  else if (path === "/alerts") page = <Alerts subscribe={subscribe} />;
  else if (path === "/markets") page = <Markets live={live} />;
  else if (path === "/assignments") page = <Assignments live={live} killed={user.killed} />;
  else if ((m = path.match(/^\/markets\/(\d+)$/))) page = <MarketPage key={m[1]} id={Number(m[1])} subscribe={subscribe} watch={watch} live={live} />;
  else if (path === "/backtests") page = <Backtests />;
  else if ((m = path.match(/^\/backtests\/(\d+)$/))) page = <BacktestPage key={m[1]} id={Number(m[1])} />;
  else if (path === "/research") page = <Studies />;
  else if (path === "/research/runs") page = <RunsPage />;
  else if (path === "/research/compare") page = <ComparePage key={location.search} />;
  else if (path === "/research/walkforward") page = <WalkForwards />;
  else if ((m = path.match(/^\/research\/walkforward\/(\d+)$/))) page = <WalkForwardPage key={m[1]} id={Number(m[1])} />;
  else if ((m = path.match(/^\/research\/(\d+)$/))) page = <StudyPage key={m[1]} id={Number(m[1])} />;
  else page = <Card title="Not found"><p>There is no page at {path}. <Link to="/">Back to the dashboard</Link>.</p></Card>;

  return (
    <div className="shell">
      <header className="top">
        <Link to="/" className="brand"><span className="logo" aria-hidden>◆</span>tradewind</Link>
        <button className="menu-toggle" aria-label="Menu" aria-expanded={menu} onClick={() => setMenu(!menu)}>☰</button>
        <nav className={menu ? "open" : ""}>
          {NAV.map(([to, label]) => <Link key={to} to={to} className={(to === "/" ? path === "/" : path.startsWith(to)) ? "active" : ""}>{label}</Link>)}
        </nav>
        <div className="user">
          <span className={`live-dot ${status}`} title={status === "live" ? "Live updates on" : "Reconnecting to live updates…"} data-testid="stream-status">{status === "live" ? "live" : "offline"}</span>
          <button className={user.killed ? "small" : "danger small"} data-testid="kill-switch" onClick={toggleKill}
            title={user.killed ? "Release the kill switch (assignments stay paused until you resume them)" : "Pause every assignment and cancel open orders"}>
            {user.killed ? "Release kill switch" : "Kill switch"}
          </button>
          <span className="email">{user.email}</span>
          <button className="link light" onClick={() => api.logout().finally(() => { setUser(null); navigate("/login"); })}>Log out</button>
        </div>
      </header>
      {user.killed && <div className="banner" role="status">The kill switch is on: nothing trades until you release it and resume your assignments.{killNote && <span data-testid="kill-note"> {killNote}</span>}</div>}
      {askKill && <KillDialog onCancel={() => setAskKill(false)} onDone={killed} />}
      <main><Suspense fallback={<Loading />}>{page}</Suspense></main>
      <Toasts subscribe={subscribe} />
    </div>
  );
}
