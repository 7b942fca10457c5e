// The memory console: a user's memories listed, searched, edited and forgotten through the memory API.
// Memories are user data: they only ever reach the page as text (textContent, text nodes), never as markup.

const KEY = "memory-gateway.key"; // sessionStorage: the key lives as long as the tab
const USER = "memory-gateway.user"; // the user an admin looked at last
const PAGE = 50;
const FOUND = 20;

const $ = (id) => document.getElementById(id);
const state = { user: "", admin: false, next: null, ticket: 0, coreTicket: 0 };

class Refused extends Error {}

class Failed extends Error {
  constructor(message, status = 0) {
    super(message);
    this.status = status;
  }
}

// --- talking to the gateway ---

async function call(method, path, body) {
  const headers = { Accept: "application/json" };
  const key = sessionStorage.getItem(KEY);
  if (key) headers.Authorization = `Bearer ${key}`;
  const init = { method, headers };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json"; // the gateway takes bodies as JSON only
    init.body = JSON.stringify(body);
  }
  const response = await fetch(path, init);
  if (response.status === 401) {
    sessionStorage.removeItem(KEY);
    askForKey(key ? "The gateway refused that key. Try another." : "This gateway asks for an API key.");
    throw new Refused();
  }
  const text = await response.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!response.ok) throw new Failed(data?.error?.message ?? `${response.status} ${response.statusText}`, response.status);
  return data;
}

function query(params) {
  const search = new URLSearchParams();
  for (const [name, value] of Object.entries(params)) {
    if (value !== null && value !== undefined && value !== "") search.set(name, String(value));
  }
  const text = search.toString();
  return text ? `?${text}` : "";
}

async function act(work) {
  try {
    await work();
  } catch (error) {
    if (!(error instanceof Refused)) tell(error.message, true);
  }
}

function tell(message, error = false) {
  const notice = $("notice");
  notice.textContent = message;
  notice.classList.toggle("error", error);
}

// --- building the page (no markup from strings) ---

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(props)) {
    if (name === "on") for (const [event, handler] of Object.entries(value)) node.addEventListener(event, handler);
    else if (name === "dataset") Object.assign(node.dataset, value);
    else if (name === "label") node.setAttribute("aria-label", value);
    else node[name] = value;
  }
  node.append(...children); // strings become text nodes
  return node;
}

// A button that does its work once at a time: a second click while the gateway answers does nothing.
function button(text, work, props = {}) {
  const node = el("button", { type: "button", ...props }, text);
  node.addEventListener("click", async () => {
    node.disabled = true;
    try {
      await act(work);
    } finally {
      node.disabled = false;
    }
  });
  return node;
}

const dateFormat = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });

function when(iso) {
  return el("time", { dateTime: iso }, dateFormat.format(new Date(iso)));
}

// A button that asks once more, in place, before it forgets or deletes.
function confirming(text, question, yes, work, props = {}) {
  const trigger = el("button", { type: "button", className: "danger", ...props }, text);
  trigger.addEventListener("click", () => {
    const cancel = el("button", { type: "button" }, "Cancel");
    const sure = el("span", { className: "confirm" }, question, button(yes, work, { className: "danger" }), cancel);
    cancel.addEventListener("click", () => {
      sure.replaceWith(trigger);
      trigger.focus();
    });
    trigger.replaceWith(sure);
    sure.querySelector("button").focus();
  });
  return trigger;
}

// --- the key ---

function askForKey(why) {
  $("console").hidden = true;
  $("who").hidden = true;
  $("key-why").textContent = why;
  $("key-form").hidden = false;
  $("key").value = "";
  $("key").focus();
}

// --- who is looked at ---

async function start() {
  $("key-form").hidden = true;
  tell("");
  let users = null;
  try {
    users = (await call("GET", "/memory/users")).users;
  } catch (error) {
    if (!(error instanceof Failed && error.status === 403)) throw error;
  }
  state.admin = users !== null;
  const wanted = state.admin ? sessionStorage.getItem(USER) : null;
  const core = await call("GET", `/memory/core${query({ user_id: wanted })}`);
  state.user = core.user_id;
  showWho(users);
  $("console").hidden = false;
  renderCore(core);
  await loadMemories(true);
}

function showWho(users) {
  $("who").hidden = false;
  $("sign-out").hidden = !sessionStorage.getItem(KEY);
  $("user").hidden = !state.admin;
  $("who").querySelector("label").hidden = !state.admin;
  $("own-user").hidden = state.admin;
  $("own-user").textContent = `Memory of ${state.user}`;
  if (!state.admin) return;
  if (!users.some((u) => u.user_id === state.user)) users.unshift({ user_id: state.user, memories: 0 });
  const counted = (n) => `${n} ${n === 1 ? "memory" : "memories"}`;
  const options = users.map((u) => el("option", { value: u.user_id }, `${u.user_id} (${counted(u.memories)})`));
  $("user").replaceChildren(...options);
  $("user").value = state.user;
}

async function pick(user) {
  sessionStorage.setItem(USER, user);
  state.user = user;
  $("search").value = "";
  await Promise.all([refreshCore(), loadMemories(true)]);
}

// --- core memory and proposed facts ---

// Each block and proposal acts for the user whose core memory it shows.
function renderCore(core) {
  state.coreTicket++; // an answer asked for before this one is stale
  const blocks = core.blocks.map((block) => blockEditor(block, core.user_id));
  $("blocks").replaceChildren(...(blocks.length ? blocks : [el("p", { className: "hint" }, "No core blocks yet.")]));
  $("proposed").replaceChildren(...core.proposed.map((fact) => proposal(fact, core.user_id)));
  $("proposals").hidden = core.proposed.length === 0;
}

let fields = 0;

function blockEditor(block, user) {
  const id = `block-${++fields}`;
  const value = el("textarea", { id, rows: 3, value: block.value });
  const usage = el("p", { className: "meta" });
  const show = (b) => usage.replaceChildren(`${b.tokens} of ${b.limit} tokens · updated `, when(b.updated_at));
  show(block);
  const path = `/memory/core/${encodeURIComponent(block.label)}`;
  const save = button(
    "Save",
    async () => {
      show(await call("PUT", path, { value: value.value, limit: block.limit, user_id: user }));
      tell(`Saved the block ${block.label}.`);
    },
    { label: `Save ${block.label}` },
  );
  const remove = confirming(
    "Delete",
    `Delete the block ${block.label}? `,
    "Yes, delete",
    async () => {
      await call("DELETE", `${path}${query({ user_id: user })}`);
      await refreshCore();
      tell(`Deleted the block ${block.label}.`);
    },
    { label: `Delete ${block.label}` },
  );
  const label = el("label", { htmlFor: id, className: "block-label" }, block.label);
  return el("div", { className: "block", dataset: { label: block.label } }, label, value, usage, el("div", { className: "actions" }, save, remove));
}

async function refreshCore() {
  const ticket = state.coreTicket;
  const core = await call("GET", `/memory/core${query({ user_id: state.user })}`);
  if (ticket === state.coreTicket) showCore(core);
}

function showCore(core) {
  if (core.user_id === state.user) renderCore(core); // else another user was picked meanwhile
}

function proposal(fact, user) {
  const into = () => $("accept-into").value.trim() || "human";
  const accept = button("Accept", async () => {
    const label = into();
    showCore(await call("POST", "/memory/core/proposed/accept", { fact, label, user_id: user }));
    tell(`Added to the block ${label}.`);
  });
  const dismiss = button("Dismiss", async () => {
    showCore(await call("POST", "/memory/core/proposed/dismiss", { fact, user_id: user }));
    tell("Dismissed.");
  });
  return el("li", {}, el("p", {}, fact), el("div", { className: "actions" }, accept, dismiss));
}

async function addBlock(event) {
  event.preventDefault();
  const label = $("new-label").value.trim();
  await call("PUT", `/memory/core/${encodeURIComponent(label)}`, { value: $("new-value").value, user_id: state.user });
  $("new-block").reset();
  await refreshCore();
  tell(`Saved the block ${label}.`);
}

// --- memories: the list, newest first, and search ---

async function loadMemories(reset) {
  const params = { user_id: state.user, memory_type: $("kind").value, limit: PAGE, before: reset ? null : state.next };
  await fill(() => call("GET", `/memory/list${query(params)}`), (page) => {
    if (reset) $("memories").replaceChildren();
    $("listing").textContent = "Newest first.";
    show(page.memories, page.next_before, page.user_id);
  });
}

async function search(text) {
  await fill(
    () => call("POST", "/memory/search", { query: text, limit: FOUND, user_id: state.user }),
    (found, user) => {
      $("memories").replaceChildren();
      $("listing").textContent = `${found.results.length} found for “${text}”, best first.`;
      show(found.results, null, user);
    },
  );
}

// Fetch, then render unless another list (another user, another search) was asked for meanwhile. The list says
// whose memories it shows once they are there (`data-user`), and that it is loading meanwhile (`aria-busy`).
async function fill(fetching, render) {
  const ticket = ++state.ticket;
  const user = state.user;
  const list = $("memories");
  list.setAttribute("aria-busy", "true");
  try {
    const answer = await fetching();
    if (ticket !== state.ticket) return;
    render(answer, user);
    list.dataset.user = user;
  } finally {
    if (ticket === state.ticket) list.removeAttribute("aria-busy");
  }
}

function show(memories, next, user) {
  const list = $("memories");
  for (const m of memories) groupFor(list, m.conversation_id, user).append(memoryItem(m, user));
  state.next = next;
  $("more").hidden = next === null;
  $("empty").hidden = list.childElementCount > 0;
}

// Consecutive memories of one conversation share a heading, with the button that forgets the conversation.
function groupFor(list, conversation, user) {
  const id = conversation ?? "";
  const last = list.lastElementChild;
  if (last && last.dataset.conversation === id) return last.querySelector("ol");
  const title = id ? el("h3", {}, "Conversation ", el("code", {}, id)) : el("h3", {}, "No conversation");
  const head = el("div", { className: "group-head" }, title);
  if (id) {
    const forget = confirming("Forget conversation", "Forget the whole conversation? ", "Yes, forget it", () =>
      forgetConversation(id, user),
    );
    head.append(forget);
  }
  const group = el("li", { className: "group", dataset: { conversation: id } }, head, el("ol", { className: "memories" }));
  list.append(group);
  return group.querySelector("ol");
}

function memoryItem(m, user) {
  const meta = el("p", { className: "meta" }, when(m.created_at), ` · ${m.memory_type === "archival" ? "note" : m.role}`);
  if (m.score !== undefined) meta.append(` · relevance ${m.score.toFixed(2)}`);
  meta.append(` · #${m.id}`);
  const item = el("li", { className: "memory", dataset: { id: String(m.id) } }, meta, el("p", { className: "content" }, m.content));
  const forget = confirming("Forget", "Forget this memory? ", "Yes, forget", async () => {
    await call("DELETE", `/memory/${m.id}${query({ user_id: user })}`);
    const group = item.closest(".group");
    item.remove();
    if (!group.querySelector(".memory")) group.remove();
    $("empty").hidden = $("memories").childElementCount > 0;
    tell("Forgotten.");
  });
  item.append(el("div", { className: "actions" }, forget));
  return item;
}

async function forgetConversation(id, user) {
  const gone = await call("DELETE", `/memory/conversations/${encodeURIComponent(id)}${query({ user_id: user })}`);
  for (const group of [...$("memories").children]) if (group.dataset.conversation === id) group.remove();
  $("empty").hidden = $("memories").childElementCount > 0;
  tell(`Forgot the conversation ${id} (${gone.deleted} messages).`);
}

// --- export and import ---

async function exportMemory() {
  const data = await call("GET", `/memory/export${query({ user_id: state.user })}`);
  const blob = new Blob([JSON.stringify(data, null, 2)], { type: "application/json" });
  const link = el("a", { href: URL.createObjectURL(blob), download: `memory-${state.user}.json` });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(link.href), 60_000);
  tell(`Exported the memory of ${state.user}.`);
}

async function importMemory(event) {
  event.preventDefault();
  const [file] = $("import-file").files;
  if (!file) throw new Failed("Choose a file to import.");
  let data;
  try {
    data = JSON.parse(await file.text());
  } catch {
    throw new Failed(`${file.name} is not JSON.`);
  }
  if (Array.isArray(data)) throw new Failed("This looks like ChatGPT's export: import it with `gateway import FILE --user U`.");
  if (data === null || typeof data !== "object") throw new Failed(`${file.name} is not a memory export.`);
  const done = await call("POST", "/memory/import", { ...data, user_id: state.user });
  $("import-form").reset();
  const already = done.already ? ` (${done.already} were there already)` : "";
  tell(`Imported ${done.messages} messages, ${done.notes} notes and ${done.core} core blocks into ${done.user_id}${already}.`);
  await refreshCore();
  await loadMemories(true);
}

// --- wiring ---

function wire() {
  $("key-form").addEventListener("submit", (event) => {
    event.preventDefault();
    sessionStorage.setItem(KEY, $("key").value.trim());
    act(start);
  });
  $("sign-out").addEventListener("click", () => {
    sessionStorage.removeItem(KEY);
    sessionStorage.removeItem(USER);
    askForKey("Give a key to see a user's memory.");
  });
  $("user").addEventListener("change", () => act(() => pick($("user").value)));
  $("kind").addEventListener("change", () => act(() => loadMemories(true)));
  $("search-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const text = $("search").value.trim();
    act(() => (text ? search(text) : loadMemories(true)));
  });
  $("more").addEventListener("click", () => act(() => loadMemories(false)));
  $("new-block").addEventListener("submit", (event) => act(() => addBlock(event)));
  $("export").addEventListener("click", () => act(exportMemory));
  $("import-form").addEventListener("submit", (event) => act(() => importMemory(event)));
}

wire();
act(start);
