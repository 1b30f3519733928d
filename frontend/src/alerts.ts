// Alerts in the open app: a toast for each alert of the in-browser channel and for each alert that could not
// be delivered, and a system notification (the Notification API) where the person allowed them.

import type { Schemas } from "./api/client";

/** An alert of the in-browser channel, as the live stream brings it (generated, like every stream event). */
export type AlertEvent = Schemas["AlertEvent"];
/** An alert that failed on one of the person's channels after its attempts. */
export type AlertFailedEvent = Schemas["AlertFailedEvent"];

export interface Toast { key: string; tone: "info" | "error"; title: string; text: string; at: number }

export const MAX_TOASTS = 4;
export const TOAST_MS = 10_000;

/** The toast for a stream event, or null for an event that is not about alerts (or is malformed). */
export function toastOf(ev: { type: string } & Record<string, unknown>, now = Date.now()): Toast | null {
  if (ev.type === "alert" && typeof ev.title === "string") {
    return { key: `alert:${String(ev.id ?? now)}`, tone: "info", title: ev.title,
             text: typeof ev.text === "string" ? ev.text : "", at: now };
  }
  if (ev.type === "alert_failed" && typeof ev.channel === "string") {
    const what = typeof ev.title === "string" ? `“${ev.title}”` : "An alert";
    return { key: `failed:${String(ev.channel_id)}:${String(ev.title)}:${now}`, tone: "error",
             title: `Alert not delivered to ${ev.channel}`,
             text: `${what} failed after ${Number(ev.attempts) || 1} attempt(s): ${typeof ev.error === "string" ? ev.error : "no answer"}`, at: now };
  }
  return null;
}

/** Newest first, one per key (an alert heard twice shows once), at most MAX_TOASTS. */
export function pushToast(list: Toast[], t: Toast): Toast[] {
  return [t, ...list.filter((x) => x.key !== t.key)].slice(0, MAX_TOASTS);
}

/** The toasts still showing at `now` (the same list when none expired, so React keeps its state). */
export function liveToasts(list: Toast[], now: number, ms = TOAST_MS): Toast[] {
  const kept = list.filter((t) => now - t.at < ms);
  return kept.length === list.length ? list : kept;
}

type NotificationApi = { permission: NotificationPermission; requestPermission(): Promise<NotificationPermission>; new (title: string, options?: NotificationOptions): unknown };
const api = (): NotificationApi | undefined => (globalThis as { Notification?: NotificationApi }).Notification;

export type NotifyState = NotificationPermission | "unsupported";

export function notifyState(n: NotificationApi | undefined = api()): NotifyState {
  return n ? n.permission : "unsupported";
}

/** Ask for system notifications (a click must lead here: browsers ignore the question otherwise). */
export async function askToNotify(n: NotificationApi | undefined = api()): Promise<NotifyState> {
  if (!n) return "unsupported";
  try {
    return await n.requestPermission();
  } catch {
    return n.permission;
  }
}

/** A system notification for this toast if the person allowed them; whether one was shown. */
export function notify(t: Toast, n: NotificationApi | undefined = api()): boolean {
  if (!n || n.permission !== "granted") return false;
  try {
    new n(t.title, { body: t.text, tag: t.key });
    return true;
  } catch {
    return false; // some browsers allow notifications only from a service worker: the toast is enough
  }
}
