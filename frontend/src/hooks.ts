import { useCallback, useEffect, useRef, useState } from "react";
import { ApiError } from "./api/client";

export interface Loaded<T> {
  data: T | null;
  error: ApiError | null;
  reload: () => void;
  setData: (d: T) => void;
}

/** Load data when `deps` change (and on demand); the last good data stays while reloading, errors are kept for display. */
export function useLoad<T>(load: () => Promise<T>, deps: unknown[] = []): Loaded<T> {
  const [data, setData] = useState<T | null>(null);
  const [error, setError] = useState<ApiError | null>(null);
  const latest = useRef(0);
  const reload = useCallback(() => {
    const n = ++latest.current; // an older answer arriving late must not overwrite a newer one
    load().then(
      (d) => { if (n === latest.current) { setData(d); setError(null); } },
      (e) => { if (n === latest.current) setError(e instanceof ApiError ? e : new ApiError(0, String(e))); },
    );
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, deps);
  useEffect(reload, [reload]);
  return { data, error, reload, setData };
}

/** `value`, updated at most once per `ms` while it keeps changing (the last change always gets through). */
export function useThrottled<T>(value: T, ms: number): T {
  const [out, setOut] = useState(value);
  const last = useRef(0);
  useEffect(() => {
    const wait = Math.max(0, last.current + ms - Date.now());
    const t = setTimeout(() => { last.current = Date.now(); setOut(value); }, wait);
    return () => clearTimeout(t);
  }, [value, ms]);
  return out;
}
