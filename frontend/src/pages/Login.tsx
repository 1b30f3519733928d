import { useState } from "react";
import { api, type ApiError, type User } from "../api/client";
import { Alert, Field } from "../components/ui";
import { asApiError, assertValid, checkCredentials } from "../forms";

const RETURNING = "tw_returning"; // set once this browser has logged in: only then is it "Welcome back"

function returning(): boolean {
  try {
    return localStorage.getItem(RETURNING) === "1";
  } catch {
    return false; // storage turned off: say nothing we do not know
  }
}

function rememberReturning(): void {
  try {
    localStorage.setItem(RETURNING, "1");
  } catch {
    /* storage turned off: the next visit is greeted as a first one */
  }
}

/** Log in, or sign up and log in; the page a logged-out visitor sees at any address (/register: signing up). */
export function Login({ onDone, register = false }: { onDone: (u: User) => void; register?: boolean }) {
  const [mode, setMode] = useState<"login" | "register">(register ? "register" : "login");
  const [email, setEmail] = useState("");
  const [password, setPassword] = useState("");
  const [err, setErr] = useState<ApiError | null>(null);
  const [busy, setBusy] = useState(false);
  const [back] = useState(returning);
  const registering = mode === "register";
  const submit = async (e: React.FormEvent) => {
    e.preventDefault();
    setBusy(true);
    setErr(null);
    try {
      assertValid(checkCredentials(email, password, registering));
      if (registering) await api.register(email.trim(), password);
      const res = await api.login(email.trim(), password);
      rememberReturning();
      onDone(res.user);
    } catch (x) {
      setErr(asApiError(x));
    } finally {
      setBusy(false);
    }
  };
  return (
    <div className="auth">
      <form className="card auth-card" onSubmit={submit} noValidate>
        <div className="brand big"><span className="logo" aria-hidden>◆</span>tradewind</div>
        <h1>{registering ? "Create your account" : "Log in"}</h1>
        <p className="muted" data-testid="auth-intro">{registering || !back ? "Write strategies in Lua, backtest them, and trade them on paper from the first minute."
          : "Welcome back: your strategies kept running while you were away."}</p>
        <Field label="Email" error={err?.forField("email")}>
          <input name="email" type="email" autoComplete="email" value={email} onChange={(e) => setEmail(e.target.value)} autoFocus />
        </Field>
        <Field label="Password" error={err?.forField("password")} hint={registering ? "At least 10 characters; not a common password." : undefined}>
          <input name="password" type="password" autoComplete={registering ? "new-password" : "current-password"} value={password} onChange={(e) => setPassword(e.target.value)} />
        </Field>
        {err?.general(["email", "password"]) && <Alert>{err.message}</Alert>}
        <button className="primary" disabled={busy}>{busy ? "One moment…" : registering ? "Sign up" : "Log in"}</button>
        <button type="button" className="link switch" onClick={() => { setMode(registering ? "login" : "register"); setErr(null); }}>
          {registering ? "Have an account? Log in" : "No account? Sign up"}
        </button>
      </form>
    </div>
  );
}
