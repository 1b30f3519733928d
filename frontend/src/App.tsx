import { useCallback, useEffect, useReducer, useRef, useState } from "react";
import { api, type User } from "./api/client";
import { Link, navigate, usePath } from "./router";
import { connectStream, initialLive, reduceLive, type StreamEvent } from "./stream";
import { Login } from "./pages/Login";
import { Dashboard } from "./pages/Dashboard";
import { StrategyEditor, StrategyList } from "./pages/Strategies";
import { Accounts } from "./pages/Accounts";
import { Assignments } from "./pages/Assignments";
import { MarketPage } from "./pages/Market";
import { Loading } from "./components/ui";

export function App() {
  const [user, setUser] = useState<User | null | undefined>(undefined);
  const path = usePath();
  const [live, dispatch] = useReducer(reduceLive, initialLive);
  const listeners = useRef(new Set<(ev: StreamEvent) => void>());
  const subscribe = useCallback((f: (ev: StreamEvent) => void) => {
    listeners.current.add(f);
    return () => { listeners.current.delete(f); };
  }, []);

  useEffect(() => { api.me().then(setUser).catch(() => setUser(null)); }, []);
  useEffect(() => {
    if (!user) return;
    return connectStream((ev) => { dispatch(ev); listeners.current.forEach((f) => f(ev)); });
  }, [user]);

  if (user === undefined) return <Loading />;
  if (user === null) return <Login onDone={(u) => { setUser(u); navigate("/"); }} />;

  let page: React.ReactNode;
  let m: RegExpMatchArray | null;
  if (path === "/" || path === "") page = <Dashboard live={live} />;
  else if (path === "/strategies") page = <StrategyList />;
  else if (path === "/strategies/new") page = <StrategyEditor id={null} />;
  else if ((m = path.match(/^\/strategies\/(\d+)$/))) page = <StrategyEditor key={m[1]} id={Number(m[1])} />;
  else if (path === "/accounts") page = <Accounts />;
  else if (path === "/assignments") page = <Assignments />;
  else if ((m = path.match(/^\/markets\/(\d+)$/))) page = <MarketPage key={m[1]} id={Number(m[1])} subscribe={subscribe} />;
  else page = <div className="card"><h2>Not found</h2><p>There is no page at {path}. <Link to="/">Back to the dashboard</Link>.</p></div>;

  const nav = [["/", "Dashboard"], ["/strategies", "Strategies"], ["/accounts", "Accounts"], ["/assignments", "Assignments"]];
  return (
    <div className="shell">
      <header className="top">
        <Link to="/" className="brand">tradewind</Link>
        <nav>{nav.map(([to, label]) => <Link key={to} to={to} className={(to === "/" ? path === "/" : path.startsWith(to)) ? "active" : ""}>{label}</Link>)}</nav>
        <div className="user">
          <button className="danger small" title="Pause every assignment and cancel open orders" onClick={() => api.kill().then(() => navigate("/assignments"))}>Kill switch</button>
          <span className="muted">{user.email}</span>
          <button className="link" onClick={() => api.logout().finally(() => setUser(null))}>Log out</button>
        </div>
      </header>
      <main>{page}</main>
    </div>
  );
}
