import { describe, expect, it } from "vitest";
import { MAX_TOASTS, askToNotify, liveToasts, notify, notifyState, pushToast, toastOf, type Toast } from "./alerts";

const alert = { type: "alert", id: "a1", event: "paused", title: "Paused: assignment #3", text: "paused by you", time: "2026-12-04T09:00:00+00:00", channel_id: 7 };

class FakeNotification {
  static permission: NotificationPermission = "default";
  static shown: { title: string; options?: NotificationOptions }[] = [];
  static answer: NotificationPermission = "granted";
  constructor(title: string, options?: NotificationOptions) { FakeNotification.shown.push({ title, options }); }
  static async requestPermission(): Promise<NotificationPermission> { FakeNotification.permission = FakeNotification.answer; return FakeNotification.answer; }
}

describe("alert toasts", () => {
  it("makes a toast of an in-browser alert and of a failed delivery, and of nothing else", () => {
    expect(toastOf(alert, 1000)).toEqual({ key: "alert:a1", tone: "info", title: "Paused: assignment #3", text: "paused by you", at: 1000 });
    const failed = toastOf({ type: "alert_failed", channel_id: 2, channel: "Ops hook", kind: "webhook", event: "fill", title: "Filled: buy 1 BTC", error: "HTTP 500", attempts: 5 }, 5);
    expect(failed?.tone).toBe("error");
    expect(failed?.title).toBe("Alert not delivered to Ops hook");
    expect(failed?.text).toBe("“Filled: buy 1 BTC” failed after 5 attempt(s): HTTP 500");
    expect(toastOf({ type: "fill", id: 1 })).toBeNull();
    expect(toastOf({ type: "alert", title: 3 })).toBeNull(); // malformed: skipped
  });

  it("keeps the newest few, one per alert, and lets them expire", () => {
    let list: Toast[] = [];
    for (let i = 0; i < 6; i++) list = pushToast(list, { key: `k${i}`, tone: "info", title: `t${i}`, text: "", at: i * 1000 });
    expect(list.map((t) => t.key)).toEqual(["k5", "k4", "k3", "k2"]);
    expect(list).toHaveLength(MAX_TOASTS);
    list = pushToast(list, { key: "k3", tone: "info", title: "again", text: "", at: 9000 });
    expect(list.map((t) => t.key)).toEqual(["k3", "k5", "k4", "k2"]);
    expect(liveToasts(list, 9000, 5000).map((t) => t.key)).toEqual(["k3", "k5"]);
    expect(liveToasts(list, 0, 1e9)).toBe(list);
  });
});

describe("system notifications", () => {
  it("are shown only once allowed, and asking says what the person chose", async () => {
    const N = FakeNotification as never;
    FakeNotification.permission = "default";
    const t = toastOf(alert, 1)!;
    expect(notify(t, N)).toBe(false);
    expect(notifyState(N)).toBe("default");
    expect(await askToNotify(N)).toBe("granted");
    expect(notify(t, N)).toBe(true);
    expect(FakeNotification.shown).toEqual([{ title: "Paused: assignment #3", options: { body: "paused by you", tag: "alert:a1" } }]);
    FakeNotification.answer = "denied";
    FakeNotification.permission = "default";
    expect(await askToNotify(N)).toBe("denied");
    expect(notify(t, N)).toBe(false);
  });

  it("say so where the browser has none", async () => {
    expect(notifyState(undefined)).toBe("unsupported");
    expect(await askToNotify(undefined)).toBe("unsupported");
  });
});
