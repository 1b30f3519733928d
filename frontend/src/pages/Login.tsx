import { useState } from "react";
import { api, ApiError, type User } from "../api/client";
import { Field } from "../components/ui";

export function Login({ onDone }: { onDone: (u: User) => void }) {
  const [mode, setMode] = useState<"login" | "register">("login");
  const [email, setEmail] = useState("");
  const [password, setPassword] = useState("");
  const [err, setErr] = useState<ApiError | null>(null);
  const [busy, setBusy] = useState(false);
  const submit = async (e: React.FormEvent) => {
    e.preventDefault();
    setBusy(true);
    setErr(null);
    try {
      if (mode === "register") await api.register(email, password);
      const res = await api.login(email, password);
      onDone(res.user);
    } catch (x) {
      setErr(x instanceof ApiError ? x : new ApiError(0, String(x)));
    } finally {
      setBusy(false);
    }
  };
  return (
    <div className="auth">
      <form className="card auth-card" onSubmit={submit}>
        <div className="brand big">tradewind</div>
        <p className="muted">{mode === "login" ? "Log in to your strategies." : "Create an account: paper trading starts with 10,000 USD."}</p>
        <Field label="Email" error={err?.forField("email")}>
          <input name="email" type="email" autoComplete="email" value={email} onChange={(e) => setEmail(e.target.value)} required />
        </Field>
        <Field label="Password" error={err?.forField("password")}>
          <input name="password" type="password" autoComplete={mode === "login" ? "current-password" : "new-password"} value={password} onChange={(e) => setPassword(e.target.value)} required />
        </Field>
        {err && !err.forField("email") && !err.forField("password") && <div className="alert" role="alert">{err.message}</div>}
        <button className="primary" disabled={busy}>{mode === "login" ? "Log in" : "Sign up"}</button>
        <button type="button" className="link" onClick={() => { setMode(mode === "login" ? "register" : "login"); setErr(null); }}>
          {mode === "login" ? "No account? Sign up" : "Have an account? Log in"}
        </button>
      </form>
    </div>
  );
}
