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
    callbacks: new Map(), // otpId -> Map(deliveryId -> {status, attempts})
    clock: { ts: Date.now() / 1000, frozen: false, at: performance.now() },
    selected: null,
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

  const nowTs = () =>
    state.clock.frozen ? state.clock.ts : state.clock.ts + (performance.now() - state.clock.at) / 1000;

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
    const response = await fetch(path, init);
    if (!response.ok) throw new Error(`${method} ${path}: ${response.status}`);
    return response.json();
  }

  // -- state ---------------------------------------------------------------------------

  function addAttempt(otpIds, deliveryId, status, attempt) {
    for (const otpId of otpIds) {
      if (!state.callbacks.has(otpId)) state.callbacks.set(otpId, new Map());
      const deliveries = state.callbacks.get(otpId);
      const delivery = deliveries.get(deliveryId) || { status, attempts: [] };
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
      const [messages, otps, callbacks, clock] = await Promise.all([
        api("GET", scoped("/_sim/messages?limit=2000")),
        api("GET", scoped("/_sim/otps?limit=2000")),
        api("GET", scoped("/_sim/callbacks?limit=2000")),
        api("GET", "/_sim/clock"),
      ]);
      state.messages = new Map(messages.messages.map((m) => [m.id, m]));
      state.otps = new Map(otps.otps.map((o) => [o.otpId, o]));
      state.callbacks = new Map();
      for (const d of callbacks.callbacks) {
        addAttempt(d.otpIds, d.id, d.status, null);
        for (const a of d.attempts) addAttempt(d.otpIds, d.id, d.status, a);
      }
      setClock(clock);
    } finally {
      state.loading = false;
    }
    const queued = state.pending.splice(0);
    for (const event of queued) apply(event);
    render();
  }

  const reload = () => loadState().catch(() => setConnection("down", "state reload failed"));

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
        addAttempt(data.otpIds, data.deliveryId, data.status, data.attempt);
        break;
      case "messages.cleared":
        state.messages.clear();
        break;
      case "reset":
        state.messages.clear();
        state.otps.clear();
        state.callbacks.clear();
        state.seen.clear();
        state.selected = null;
        setClock(data);
        break;
      case "hello":
        setClock(data.clock);
        return;
      case "clock":
        setClock(data);
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

  function render() {
    const list = conversations();
    if (!state.selected || !list.some((c) => c.phone === state.selected)) {
      state.selected = list.length ? list[0].phone : null;
    }
    const current = list.find((c) => c.phone === state.selected);
    if (current) state.seen.set(current.phone, current.messages.length);

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
          text: otp.status === "PENDING" ? "" : `since ${clockTime(otp.dateUpdated)}`,
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
    return item;
  }

  function tick() {
    const now = nowTs();
    $("[data-testid=clock]").textContent = isoTime(now);
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
      setConnection("down", "reconnecting…");
      setTimeout(connect, backoff);
      backoff = Math.min(backoff * 2, 5000);
    });
  }

  // -- controls ------------------------------------------------------------------------

  function wire() {
    for (const button of document.querySelectorAll("[data-advance]")) {
      button.addEventListener("click", () => api("POST", "/_sim/clock", { advance: Number(button.dataset.advance) }));
    }
    $("[data-testid=clear]").addEventListener("click", () => api("DELETE", scoped("/_sim/messages")));
    $("[data-testid=reset]").addEventListener("click", () => api("POST", scoped("/_sim/reset")));
    if (account) {
      const badge = $("[data-testid=account]");
      badge.textContent = `account ${account}`;
      badge.hidden = false;
    }
    $("[data-testid=back]").addEventListener("click", () => ($(".layout").dataset.view = "list"));
    $("[data-testid=search]").addEventListener("input", (e) => {
      state.query = e.target.value;
      render();
    });
    setInterval(tick, 250);
  }

  wire();
  connect();
})();
