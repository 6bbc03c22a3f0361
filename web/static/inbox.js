// otpsim live inbox: initial state from the control API, then live events over /_sim/ws.
// Every piece of message text is put on the page with textContent, never as HTML.
"use strict";

(() => {
  const $ = (sel) => document.querySelector(sel);
  // "/?account=KEY" shows one account (API key or OAuth client id); "/" shows them all.
  const account = new URLSearchParams(location.search).get("account");
  const scoped = (path) =>
    account ? `${path}${path.includes("?") ? "&" : "?"}account=${encodeURIComponent(account)}` : path;
  const state = {
    messages: new Map(), // id -> message
    otps: new Map(), // otpId -> OTP (control view)
    callbacks: new Map(), // otpId -> Map(deliveryId -> delivery: {id, otpIds, status, attempts, ...})
    clock: { ts: Date.now() / 1000, frozen: false, at: performance.now() },
    live: false, // the websocket is open: the clock runs only while the simulator answers
    scenario: null, // GET /_sim/scenario, then the "scenario" events
    selected: null,
    rawOpen: new Set(), // message ids whose raw JSON view is open (kept across re-renders)
    seen: new Map(), // phone -> messages seen
    query: "",
    loading: false,
    pending: [], // events that arrived while the state was loading
  };

  // -- small helpers -----------------------------------------------------------------

  function el(tag, props, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(props || {})) {
      if (value === undefined || value === null) continue;
      if (key === "class") node.className = value;
      else if (key === "text") node.textContent = value;
      else if (key === "onclick") node.addEventListener("click", value);
      else node.setAttribute(key, value);
    }
    for (const child of children) if (child !== null && child !== undefined) node.append(child);
    return node;
  }

  // The clock runs on the page between snapshots, but only while the simulator answers:
  // a stopped server has a stopped clock.
  const nowTs = () =>
    state.clock.frozen || !state.live
      ? state.clock.ts
      : state.clock.ts + (performance.now() - state.clock.at) / 1000;

  function setClock(snapshot) {
    state.clock = { ts: snapshot.timestamp, frozen: snapshot.frozen, at: performance.now() };
    $("[data-testid=clock-frozen]").hidden = !snapshot.frozen;
    tick();
  }

  const isoTime = (ts) => new Date(ts * 1000).toISOString().replace(/\.\d+Z$/, "Z");
  const clockTime = (iso) => (iso ? iso.slice(11, 19) : "");

  function duration(seconds) {
    const s = Math.max(0, Math.ceil(seconds));
    const m = Math.floor(s / 60);
    return `${m}:${String(s % 60).padStart(2, "0")}`;
  }

  async function api(method, path, body) {
    const init = { method, headers: { Accept: "application/json" } };
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(path, init);
    } catch {
      throw new Error("the simulator did not answer (is it running?)");
    }
    if (!response.ok) {
      // The provider's error shape: {"type", "code", "message", ...}.
      let detail = `HTTP ${response.status}`;
      try {
        const error = await response.json();
        if (error && typeof error.message === "string") detail = `${error.message} (HTTP ${response.status}, ${error.code})`;
      } catch {
        /* not JSON: the status says enough */
      }
      throw new Error(detail);
    }
    return response.json();
  }

  // -- feedback ------------------------------------------------------------------------

  let noticeTimer = null;
  function notify(text) {
    $("[data-testid=notice-text]").textContent = text;
    $("[data-testid=notice]").hidden = false;
    clearTimeout(noticeTimer);
    noticeTimer = setTimeout(() => ($("[data-testid=notice]").hidden = true), 15000);
  }

  // An action from a button: a failure is shown on the page, not only in the console.
  async function act(label, method, path, body) {
    try {
      await api(method, path, body);
      $("[data-testid=notice]").hidden = true;
    } catch (error) {
      notify(`${label} failed: ${error.message}`);
    }
  }

  // A real dialog (keyboard: Escape or Cancel, which has the focus, keeps everything).
  function confirmAction(title, text, ok) {
    const dialog = $("[data-testid=confirm]");
    $("[data-testid=confirm-title]").textContent = title;
    $("[data-testid=confirm-text]").textContent = text;
    $("[data-testid=confirm-ok]").textContent = ok;
    dialog.returnValue = "";
    return new Promise((resolve) => {
      dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true });
      dialog.showModal();
      $("[data-testid=confirm-cancel]").focus();
    });
  }

  function setScenario(scenario) {
    state.scenario = scenario && scenario.active ? scenario : null;
    const banner = $("[data-testid=scenario]");
    banner.hidden = !state.scenario;
    $("[data-testid=scenario-name]").textContent = state.scenario ? state.scenario.name || "(unnamed)" : "";
  }

  // -- state ---------------------------------------------------------------------------

  function addAttempt(otpIds, deliveryId, status, attempt, full) {
    for (const otpId of otpIds) {
      if (!state.callbacks.has(otpId)) state.callbacks.set(otpId, new Map());
      const deliveries = state.callbacks.get(otpId);
      const delivery = deliveries.get(deliveryId) || { ...(full || { id: deliveryId, otpIds }), attempts: [] };
      delivery.status = status;
      if (attempt && !delivery.attempts.some((a) => a.number === attempt.number)) {
        delivery.attempts.push(attempt);
      }
      deliveries.set(deliveryId, delivery);
    }
  }

  async function loadState() {
    state.loading = true;
    try {
      const [messages, otps, callbacks, clock, scenario] = await Promise.all([
        api("GET", scoped("/_sim/messages?limit=2000")),
        api("GET", scoped("/_sim/otps?limit=2000")),
        api("GET", scoped("/_sim/callbacks?limit=2000")),
        api("GET", "/_sim/clock"),
        api("GET", "/_sim/scenario"),
      ]);
      state.messages = new Map(messages.messages.map((m) => [m.id, m]));
      state.otps = new Map(otps.otps.map((o) => [o.otpId, o]));
      state.callbacks = new Map();
      for (const d of callbacks.callbacks) {
        addAttempt(d.otpIds, d.id, d.status, null, d);
        for (const a of d.attempts) addAttempt(d.otpIds, d.id, d.status, a, d);
      }
      setClock(clock);
      setScenario(scenario);
    } finally {
      state.loading = false;
    }
    const queued = state.pending.splice(0);
    for (const event of queued) apply(event);
    render();
  }

  const reload = () => loadState().catch((error) => notify(`Loading the inbox failed: ${error.message}`));

  function apply(event) {
    if (state.loading) {
      state.pending.push(event);
      return;
    }
    const data = event.data || {};
    if (account && data.account && data.account !== account) return;
    if ((event.type === "messages.cleared" || event.type === "reset") && data.account) {
      reload(); // one account's clear or reset: what is left comes from the server
      return;
    }
    switch (event.type) {
      case "message.created":
      case "message.delivered":
      case "message.undelivered":
        state.messages.set(data.id, data);
        break;
      case "otp.created":
      case "otp.updated":
        state.otps.set(data.otpId, data);
        break;
      case "callback.attempt":
        addAttempt(data.otpIds, data.deliveryId, data.status, data.attempt, {
          id: data.deliveryId,
          account: data.account,
          otpIds: data.otpIds,
        });
        break;
      case "messages.cleared":
        state.messages.clear();
        break;
      case "reset":
        state.messages.clear();
        state.otps.clear();
        state.callbacks.clear();
        state.seen.clear();
        state.rawOpen.clear();
        state.selected = null;
        $(".layout").dataset.view = "list";
        setClock(data);
        break;
      case "hello":
        setClock(data.clock);
        return;
      case "clock":
        setClock(data);
        return;
      case "scenario":
        setScenario(data);
        return;
      default:
        return;
    }
    scheduleRender();
  }

  // -- rendering -----------------------------------------------------------------------

  let renderQueued = false;
  function scheduleRender() {
    if (renderQueued) return;
    renderQueued = true;
    requestAnimationFrame(() => {
      renderQueued = false;
      render();
    });
  }

  function conversations() {
    const byPhone = new Map();
    for (const m of state.messages.values()) {
      let c = byPhone.get(m.phoneNumber);
      if (!c) {
        c = { phone: m.phoneNumber, country: m.countryIso, messages: [], last: 0 };
        byPhone.set(m.phoneNumber, c);
      }
      c.messages.push(m);
      c.last = Math.max(c.last, m.seq);
    }
    // seq is the order of creation (timestamps tie while the clock is frozen).
    for (const c of byPhone.values()) c.messages.sort((a, b) => a.seq - b.seq);
    const q = state.query.trim().toLowerCase();
    const digits = q.replace(/[^0-9]/g, "");
    return [...byPhone.values()]
      .filter(
        (c) =>
          !q ||
          (digits && c.phone.includes(digits)) ||
          c.messages.some((m) => m.text.toLowerCase().includes(q) || m.from.toLowerCase().includes(q)),
      )
      .sort((a, b) => b.last - a.last);
  }

  // At phone width the list and the conversation take turns: only the one on screen
  // is read, and nothing is opened for the user.
  const narrow = window.matchMedia("(max-width: 720px)");
  const conversationShown = () => !narrow.matches || $(".layout").dataset.view === "conversation";

  function render() {
    const list = conversations();
    if (!state.selected || !list.some((c) => c.phone === state.selected)) {
      state.selected = list.length && !narrow.matches ? list[0].phone : null;
    }
    const current = list.find((c) => c.phone === state.selected);
    if (current && conversationShown()) state.seen.set(current.phone, current.messages.length);

    const ul = $("[data-testid=conversations]");
    ul.replaceChildren(
      ...list.map((c) => {
        const unread = c.messages.length - (state.seen.get(c.phone) || 0);
        const last = c.messages[c.messages.length - 1];
        return el(
          "li",
          {},
          el(
            "button",
            {
              type: "button",
              "data-testid": "conversation",
              "data-phone": c.phone,
              "aria-current": c.phone === state.selected ? "true" : "false",
              onclick: () => select(c.phone),
            },
            el("span", { class: "iso", "data-testid": "country", title: "country", text: c.country }),
            el("span", { class: "phone", text: c.phone }),
            el("time", {
              class: "when",
              "data-testid": "conversation-time",
              datetime: last ? last.createdAt : null,
              title: last ? last.createdAt : null,
              text: last ? clockTime(last.createdAt) : "",
            }),
            unread > 0 ? el("span", { class: "unread", "data-testid": "unread", text: String(unread) }) : el("span"),
            el("span", { class: "preview", text: last ? last.text : "" }),
          ),
        );
      }),
    );
    $("[data-testid=no-conversations]").hidden = state.messages.size > 0;
    $("[data-testid=conversation-title]").textContent = current
      ? `${current.phone} · ${current.country}`
      : state.messages.size
        ? "No number matches the search"
        : "Select a number";
    $("[data-testid=bubbles]").replaceChildren(...(current ? current.messages.map(bubble) : []));
    tick();
  }

  function textWithPin(text, pin) {
    const span = el("div", { class: "text", "data-testid": "sms-text" });
    if (!pin) {
      span.textContent = text;
      return span;
    }
    const parts = text.split(pin);
    parts.forEach((part, i) => {
      if (part) span.append(part);
      if (i < parts.length - 1) span.append(el("mark", { class: "pin", text: pin }));
    });
    return span;
  }

  function bubble(m) {
    const otp = state.otps.get(m.otpId);
    const copy = el("button", {
      type: "button",
      class: "copy",
      "data-testid": "copy-pin",
      title: "Copy the PIN",
      text: "Copy",
      onclick: async (e) => {
        try {
          await navigator.clipboard.writeText(m.pin);
          e.target.textContent = "Copied";
        } catch {
          e.target.textContent = "Copy failed";
        }
        setTimeout(() => (e.target.textContent = "Copy"), 1200);
      },
    });
    const otpRow = el(
      "div",
      { class: "otp" },
      el("span", {}, "PIN ", el("code", { class: "pin", "data-testid": "pin", text: m.pin })),
      copy,
    );
    if (otp) {
      otpRow.append(
        el("span", { class: "badge", "data-testid": "otp-status", "data-status": otp.status, text: otp.status }),
        el("span", { "data-testid": "attempts", text: `attempts ${otp.attempts}/${otp.maxAttempts}` }),
        el("span", {
          "data-testid": "countdown",
          "data-expires": otp.status === "PENDING" ? String(Date.parse(otp.dateExpires) / 1000) : null,
          // An OTP expired when its time ran out, whenever the page heard of it.
          text:
            otp.status === "PENDING"
              ? ""
              : `since ${clockTime(otp.status === "EXPIRED" ? otp.dateExpires : otp.dateUpdated)}`,
        }),
      );
    }
    const item = el(
      "li",
      { class: "sms", "data-testid": "sms", "data-otp-id": m.otpId },
      el(
        "div",
        { class: "meta" },
        el("span", { class: "sender", "data-testid": "sender", text: m.from }),
        // All accounts on one page: say whose SMS this is (a link to that account's view).
        !account && m.account
          ? el("a", {
              class: "acct",
              "data-testid": "sms-account",
              href: `/?account=${encodeURIComponent(m.account)}`,
              title: "account (API key or OAuth client id): show only this account",
              text: m.account,
            })
          : null,
        el("time", { datetime: m.createdAt, text: clockTime(m.createdAt) }),
        el("span", { text: `${m.parts} part${m.parts === 1 ? "" : "s"} · ${m.encoding}` }),
        el("span", {
          "data-testid": "delivery",
          class: m.status === "UNDELIVERED" ? "undelivered" : null,
          text: m.status === "UNDELIVERED" ? "undelivered: never reached the phone" : m.status.toLowerCase(),
        }),
      ),
      textWithPin(m.text, m.pin),
      otpRow,
    );
    const deliveries = state.callbacks.get(m.otpId);
    if (deliveries && deliveries.size) {
      const rows = [];
      for (const [id, d] of deliveries) {
        if (!d.attempts.length) {
          rows.push(el("li", { text: `callback ${id.slice(0, 12)}… ${d.status}` }));
        }
        for (const a of d.attempts) {
          const ok = a.statusCode !== null && a.statusCode >= 200 && a.statusCode < 300;
          const what = a.statusCode !== null ? `HTTP ${a.statusCode}` : a.error;
          const retry = a.nextRetryAt ? ` · retry at ${clockTime(a.nextRetryAt)}` : "";
          rows.push(
            el("li", {
              class: ok ? "ok" : "err",
              "data-testid": "callback-attempt",
              text: `callback #${a.number} ${what} · ${Math.round(a.latencyMs)} ms${retry}`,
            }),
          );
        }
      }
      item.append(el("ul", { class: "callbacks", "data-testid": "callbacks" }, ...rows));
    }
    item.append(rawView(m, otp, deliveries));
    return item;
  }

  // The data behind a bubble, as the control API has it: message, OTP, callbacks.
  function rawView(m, otp, deliveries) {
    const json = (value) => JSON.stringify(value, null, 2);
    const section = (label, testid, value) => [
      el("h3", { text: label }),
      el("pre", { "data-testid": testid, text: json(value) }),
    ];
    const details = el(
      "details",
      { class: "raw", "data-testid": "raw" },
      el("summary", { text: "Raw JSON" }),
      ...section("message", "raw-message", m),
      ...section("OTP", "raw-otp", otp || null),
      ...section("callback deliveries and attempts", "raw-callbacks", deliveries ? [...deliveries.values()] : []),
    );
    details.open = state.rawOpen.has(m.id);
    details.addEventListener("toggle", () => {
      if (details.open) state.rawOpen.add(m.id);
      else state.rawOpen.delete(m.id);
    });
    return details;
  }

  function tick() {
    const now = nowTs();
    const iso = isoTime(now);
    $("[data-testid=clock]").replaceChildren(el("span", { class: "date", text: iso.slice(0, 11) }), iso.slice(11));
    for (const node of document.querySelectorAll("[data-expires]")) {
      const left = Number(node.dataset.expires) - now;
      node.textContent = left > 0 ? `expires in ${duration(left)}` : "expiring…";
    }
  }

  function select(phone) {
    state.selected = phone;
    $(".layout").dataset.view = "conversation";
    render();
  }

  // -- live connection -----------------------------------------------------------------

  function setConnection(kind, text) {
    const node = $("[data-testid=connection]");
    node.dataset.state = kind;
    node.textContent = text;
    if (kind === "down") {
      state.clock = { ts: nowTs(), frozen: state.clock.frozen, at: performance.now() };
    }
    state.live = kind === "live";
    const clock = $("[data-testid=clock]");
    if (kind === "down") clock.dataset.stopped = "true";
    else delete clock.dataset.stopped;
    $("[data-testid=offline]").hidden = kind !== "down";
    tick();
  }

  let backoff = 250;
  function connect() {
    const scheme = location.protocol === "https:" ? "wss://" : "ws://";
    const ws = new WebSocket(`${scheme}${location.host}/_sim/ws`);
    ws.addEventListener("open", () => {
      backoff = 250;
      setConnection("live", "live");
      // (Re)load the whole state: events missed while away are then covered.
      reload();
    });
    ws.addEventListener("message", (e) => apply(JSON.parse(e.data)));
    ws.addEventListener("close", () => {
      setConnection("down", "disconnected · reconnecting…");
      setTimeout(connect, backoff);
      backoff = Math.min(backoff * 2, 5000);
    });
  }

  // -- controls ------------------------------------------------------------------------

  function wire() {
    for (const button of document.querySelectorAll("[data-advance]")) {
      button.addEventListener("click", () =>
        act(button.dataset.label, "POST", "/_sim/clock", { advance: Number(button.dataset.advance) }),
      );
    }
    const whose = account ? `account ${account}'s` : "every account's";
    $("[data-testid=clear]").addEventListener("click", async () => {
      if (await confirmAction("Clear the inbox?", `This deletes ${whose} messages. The OTPs stay.`, "Clear inbox")) {
        act("Clear inbox", "DELETE", scoped("/_sim/messages"));
      }
    });
    $("[data-testid=reset]").addEventListener("click", async () => {
      const what = account
        ? `This deletes account ${account}'s OTPs, messages and callbacks.`
        : "This deletes every OTP, message and callback and puts the clock back as configured. An active scenario stays.";
      if (await confirmAction("Reset the simulator?", what, "Reset")) act("Reset", "POST", scoped("/_sim/reset"));
    });
    $("[data-testid=notice-dismiss]").addEventListener("click", () => ($("[data-testid=notice]").hidden = true));
    narrow.addEventListener("change", render);
    if (account) {
      const badge = $("[data-testid=account]");
      badge.textContent = `account ${account}`;
      badge.hidden = false;
    }
    $("[data-testid=back]").addEventListener("click", () => {
      $(".layout").dataset.view = "list";
      render();
    });
    $("[data-testid=search]").addEventListener("input", (e) => {
      state.query = e.target.value;
      render();
    });
    setInterval(tick, 250);
  }

  wire();
  connect();
})();
