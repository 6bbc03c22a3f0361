// otpsim live inbox: initial state from the control API, then live events over /_sim/ws.
// Every piece of message text (and of a journaled request: its path, body, error) is put
// on the page with textContent, never as HTML.
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
    requests: new Map(), // journal id -> request entry (GET /_sim/requests, then request.logged)
    journal: true, // whether GET /_sim/requests answered
    view: location.hash === "#requests" ? "requests" : "conversations",
    clock: { ts: Date.now() / 1000, frozen: false, at: performance.now() },
    live: false, // the websocket is open: the clock runs only while the simulator answers
    scenario: null, // GET /_sim/scenario, then the "scenario" events
    selected: null,
    rawOpen: new Set(), // message and request ids whose raw JSON view is open (kept across re-renders)
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

  const MAX_REQUESTS = 2000; // journal entries kept on the page (the newest)
  const MAX_ROWS = 500; // rows of the Requests table drawn at once
  // Journal ids ("r-000123") are monotonic: their number orders requests.
  const idNum = (id) => Number(String(id).replace(/\D/g, "")) || 0;
  const refused = (r) => r.status >= 400;
  const statusClass = (status) => String(status)[0];

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
      return true;
    } catch (error) {
      notify(`${label} failed: ${error.message}`);
      return false;
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

  function addRequest(entry) {
    state.requests.set(entry.id, entry);
    if (state.requests.size > MAX_REQUESTS) {
      const oldest = [...state.requests.keys()].sort((a, b) => idNum(a) - idNum(b));
      for (const id of oldest.slice(0, state.requests.size - MAX_REQUESTS)) state.requests.delete(id);
    }
  }

  async function loadState() {
    state.loading = true;
    try {
      const [messages, otps, callbacks, clock, scenario, requests] = await Promise.all([
        api("GET", scoped("/_sim/messages?limit=2000")),
        api("GET", scoped("/_sim/otps?limit=2000")),
        api("GET", scoped("/_sim/callbacks?limit=2000")),
        api("GET", "/_sim/clock"),
        api("GET", "/_sim/scenario"),
        // The journal is one more view: the page works without it (and says so).
        api("GET", scoped("/_sim/requests?limit=200")).catch(() => null),
      ]);
      state.messages = new Map(messages.messages.map((m) => [m.id, m]));
      state.journal = requests !== null;
      state.requests = new Map();
      for (const r of requests ? requests.requests : []) addRequest(r);
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
    // One account's page: a request nobody authenticated (account null) is not its own.
    if (account && event.type === "request.logged" && data.account !== account) return;
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
      case "request.logged":
        addRequest(data);
        break;
      case "messages.cleared":
        state.messages.clear();
        break;
      case "reset":
        reload(); // the journal says itself what a reset left of it
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

  // A conversation is a number's SMS and its refused calls, in time order. Times tie
  // while the clock is frozen: then the journal's order decides (an SMS takes the place
  // of the POST /otp that created it), and SMS among themselves keep their seq.
  function sortKey(item, created) {
    if (item.kind === "sms") {
      const m = item.m;
      return { t: Date.parse(m.createdAt), rank: created.get(m.otpId), seq: m.seq };
    }
    return { t: Date.parse(item.r.time), rank: idNum(item.r.id), seq: null };
  }

  function compareKeys(a, b) {
    if (a.t !== b.t) return a.t - b.t;
    if (a.rank !== undefined && b.rank !== undefined) return a.rank - b.rank;
    if (a.seq !== null && b.seq !== null) return a.seq - b.seq;
    return a.seq === null ? -1 : 1; // unknown order: the refused call first
  }

  function conversations() {
    const byPhone = new Map();
    const thread = (phone) => {
      let c = byPhone.get(phone);
      if (!c) {
        c = { phone, country: "", messages: [], items: [] };
        byPhone.set(phone, c);
      }
      return c;
    };
    for (const m of state.messages.values()) {
      const c = thread(m.phoneNumber);
      c.country = m.countryIso;
      c.messages.push(m);
      c.items.push({ kind: "sms", m });
    }
    const created = new Map(); // otpId -> the journal number of the call that created it
    for (const r of state.requests.values()) {
      if (r.method === "POST" && r.path === "/otp" && r.otpId && !refused(r)) created.set(r.otpId, idNum(r.id));
      if (refused(r) && r.phoneNumber) thread(r.phoneNumber).items.push({ kind: "refused", r });
    }
    for (const c of byPhone.values()) {
      for (const item of c.items) item.key = sortKey(item, created);
      c.items.sort((a, b) => compareKeys(a.key, b.key));
      c.messages.sort((a, b) => a.seq - b.seq);
      c.last = c.items[c.items.length - 1];
    }
    const q = state.query.trim().toLowerCase();
    const digits = q.replace(/[^0-9]/g, "");
    const matches = (item) =>
      item.kind === "sms"
        ? item.m.text.toLowerCase().includes(q) || item.m.from.toLowerCase().includes(q)
        : item.r.path.toLowerCase().includes(q) || ((item.r.error && item.r.error.message) || "").toLowerCase().includes(q);
    return [...byPhone.values()]
      .filter((c) => !q || (digits && c.phone.includes(digits)) || c.items.some(matches))
      .sort((a, b) => compareKeys(b.last.key, a.last.key));
  }

  const itemTime = (item) => (item.kind === "sms" ? item.m.createdAt : item.r.time);
  const callText = (r) => `${r.method} ${r.path}`;
  const errorText = (r) => (r.error ? `${r.error.type} ${r.error.code}` : "");
  const preview = (item) =>
    item.kind === "sms" ? item.m.text : `refused: ${callText(item.r)} → ${item.r.status} ${errorText(item.r)}`;

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
        const last = c.last;
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
            el("span", { class: "iso", "data-testid": "country", title: "country", text: c.country || "—" }),
            el("span", { class: "phone", text: c.phone }),
            el("time", {
              class: "when",
              "data-testid": "conversation-time",
              datetime: itemTime(last),
              title: itemTime(last),
              text: clockTime(itemTime(last)),
            }),
            unread > 0 ? el("span", { class: "unread", "data-testid": "unread", text: String(unread) }) : el("span"),
            el("span", { class: last.kind === "sms" ? "preview" : "preview refused-preview", text: preview(last) }),
          ),
        );
      }),
    );
    const any = state.messages.size > 0 || [...state.requests.values()].some((r) => refused(r) && r.phoneNumber);
    $("[data-testid=no-conversations]").hidden = any;
    $("[data-testid=conversation-title]").textContent = current
      ? `${current.phone}${current.country ? ` · ${current.country}` : ""}`
      : any
        ? "No number matches the search"
        : "Select a number";
    $("[data-testid=bubbles]").replaceChildren(
      ...(current ? current.items.map((item) => (item.kind === "sms" ? bubble(item.m) : refusedCall(item.r))) : []),
    );
    renderRequests();
    tick();
  }

  // An account's name as a link to that account's page (all accounts on one page only).
  const accountLink = (name) =>
    !account && name
      ? el("a", {
          class: "acct",
          "data-testid": "sms-account",
          href: `/?account=${encodeURIComponent(name)}`,
          title: "account (API key or OAuth client id): show only this account",
          text: name,
        })
      : null;

  // A <details> with the JSON behind an item, kept open across re-renders.
  function rawDetails(id, sections) {
    const details = el(
      "details",
      { class: "raw", "data-testid": "raw" },
      el("summary", { text: "Raw JSON" }),
      ...sections.flatMap(([label, testid, value]) => [
        el("h3", { text: label }),
        el("pre", { "data-testid": testid, text: JSON.stringify(value, null, 2) }),
      ]),
    );
    details.open = state.rawOpen.has(id);
    details.addEventListener("toggle", () => {
      if (details.open) state.rawOpen.add(id);
      else state.rawOpen.delete(id);
    });
    return details;
  }

  // A call the simulator refused (4xx, 5xx) about this number, among its SMS.
  function refusedCall(r) {
    const error = r.error || {};
    return el(
      "li",
      { class: "refused", "data-testid": "refused-call", "data-request-id": r.id },
      el(
        "div",
        { class: "meta" },
        el("span", { class: "label", text: "refused call" }),
        accountLink(r.account),
        el("time", { datetime: r.time, text: clockTime(r.time) }),
        el("span", { text: `${Number(r.latencyMs).toFixed(1)} ms` }),
      ),
      el(
        "div",
        { class: "call" },
        el("code", { "data-testid": "refused-request", text: callText(r) }),
        el("span", { class: "status", "data-testid": "refused-status", "data-class": statusClass(r.status), text: String(r.status) }),
        r.error ? el("span", { class: "error", "data-testid": "refused-error", text: errorText(r) }) : null,
      ),
      error.message ? el("div", { class: "message", "data-testid": "refused-message", text: error.message }) : null,
      el("div", {
        class: r.rules && r.rules.length ? "rules" : "rules none",
        "data-testid": "refused-rules",
        text:
          r.rules && r.rules.length
            ? `scenario rule${r.rules.length === 1 ? "" : "s"}: ${r.rules.join(" · ")}`
            : "no scenario rule: refused by the simulator's own checks",
      }),
      rawDetails(r.id, [["request (journal entry)", "raw-request", r]]),
    );
  }

  // -- the Requests view: the journal as a table -----------------------------------------

  function requestFilter() {
    const status = $("[data-testid=requests-status]").value;
    const path = $("[data-testid=requests-path]").value.trim().toLowerCase();
    return (r) =>
      (!status || (status === "refused" ? refused(r) : statusClass(r.status) === status)) &&
      (!path || r.path.toLowerCase().includes(path));
  }

  function showRaw(title, value) {
    $("[data-testid=raw-dialog-title]").textContent = title;
    $("[data-testid=raw-dialog-json]").textContent = JSON.stringify(value, null, 2);
    $("[data-testid=raw-dialog]").showModal();
  }

  function renderRequests() {
    const all = [...state.requests.values()];
    $("[data-testid=requests-count]").textContent = all.length ? String(all.length) : "";
    if (state.view !== "requests") return;
    const shown = all.filter(requestFilter()).sort((a, b) => idNum(b.id) - idNum(a.id));
    const rows = shown.slice(0, MAX_ROWS).map((r) =>
      el(
        "tr",
        { "data-testid": "request-row", "data-request-id": r.id, "data-status-class": statusClass(r.status) },
        el("td", {}, el("time", { datetime: r.time, title: r.time, text: clockTime(r.time) })),
        el("td", { class: "who", text: r.account || "—" }),
        el("td", {}, el("code", { "data-testid": "request-call", text: callText(r) })),
        el("td", {}, el("span", { class: "status", "data-testid": "request-status", "data-class": statusClass(r.status), text: String(r.status) })),
        el("td", { class: "error", title: r.error ? r.error.message : null, text: r.error ? `${errorText(r)}: ${r.error.message}` : "" }),
        el("td", { "data-testid": "request-rules", text: (r.rules || []).join(" · ") }),
        el("td", { class: "num", text: `${Number(r.latencyMs).toFixed(1)} ms` }),
        el(
          "td",
          {},
          el("button", {
            type: "button",
            class: "small",
            "data-testid": "request-raw",
            text: "JSON",
            title: "The journal entry as JSON",
            onclick: () => showRaw(`${callText(r)} → ${r.status}`, r),
          }),
        ),
      ),
    );
    $("[data-testid=requests]").replaceChildren(...rows);
    $("[data-testid=requests-shown]").textContent =
      shown.length > MAX_ROWS ? `newest ${MAX_ROWS} of ${shown.length}` : `${shown.length} of ${all.length}`;
    const empty = $("[data-testid=no-requests]");
    empty.hidden = all.length > 0;
    if (!state.journal) {
      empty.hidden = false;
      empty.textContent = "The request journal (GET /_sim/requests) is not available on this simulator.";
    }
  }

  function setView(view) {
    state.view = view;
    for (const tab of document.querySelectorAll("[data-tab]")) {
      tab.setAttribute("aria-selected", String(tab.dataset.tab === view));
    }
    $(".layout").hidden = view !== "conversations";
    $("[data-testid=requests-view]").hidden = view !== "requests";
    history.replaceState(null, "", view === "requests" ? "#requests" : location.pathname + location.search);
    render();
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
        accountLink(m.account),
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
    return rawDetails(m.id, [
      ["message", "raw-message", m],
      ["OTP", "raw-otp", otp || null],
      ["callback deliveries and attempts", "raw-callbacks", deliveries ? [...deliveries.values()] : []],
    ]);
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
    for (const tab of document.querySelectorAll("[data-tab]")) {
      tab.addEventListener("click", () => setView(tab.dataset.tab));
    }
    $("[data-testid=requests-status]").addEventListener("change", renderRequests);
    $("[data-testid=requests-path]").addEventListener("input", renderRequests);
    $("[data-testid=requests-clear]").addEventListener("click", async () => {
      const what = account ? `account ${account}'s` : "every";
      if (await confirmAction("Clear the requests?", `This empties the journal of ${what} provider API call.`, "Clear requests")) {
        if (await act("Clear requests", "DELETE", scoped("/_sim/requests"))) reload();
      }
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
  setView(state.view);
  connect();
})();
