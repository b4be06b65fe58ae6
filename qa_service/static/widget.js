/* Drug information QA: embeddable chat widget.
 *
 * Embed with one line:
 *   <script src="http://HOST:8000/widget.js" data-api="http://HOST:8000"></script>
 * Optional attributes: data-open="true", data-timeout="20000" (ms), data-title="...",
 * data-api-key="KEY" (sent as Authorization: Bearer KEY, where the server has API keys set).
 *
 * Everything lives in the open shadow root of <div id="drugqa-widget">. Every string that
 * comes from the API is rendered as text (createElement + textContent / text nodes only),
 * and no inline style is used anywhere: visibility is switched with the `hidden` attribute.
 *
 * The empty panel says what the index covers (GET /v1/coverage: its medicines, its document
 * count, example questions to click). The conversation is kept in sessionStorage as data (the
 * questions and the API's replies, never HTML) and drawn again, as text, after a reload in the
 * same tab; "New conversation" forgets it.
 */
(function () {
  'use strict';

  if (window.__drugqaWidgetLoaded || document.getElementById('drugqa-widget')) return;
  window.__drugqaWidgetLoaded = true;

  const PANEL_ID = 'drugqa-panel';
  const TITLE_ID = 'drugqa-title';
  const DEFAULT_TIMEOUT_MS = 20000;
  const COPIED_MS = 2000;
  const CONFIDENCE_LEVELS = new Set(['strong', 'moderate', 'weak']);
  const UNREACHABLE = "The service can't be reached right now.";
  const UNREADABLE = 'The service sent a reply the assistant cannot read.';
  const RELOADED = 'No answer came before the page was reloaded.';
  const STORE_KEY = 'drugqa-conversation';
  const STORE_VERSION = 1;
  const MAX_STORED_TURNS = 30;
  const MAX_NAMES_SHOWN = 12;
  const REASONS = [
    ['wrong_medicine', 'Wrong medicine'],
    ['wrong_section', 'Wrong section'],
    ['outdated', 'Outdated'],
    ['other', 'Other'],
  ];

  const script = document.currentScript || lastWidgetScript();
  const config = readConfig(script);
  const state = { busy: false, inflight: null, docToken: 0, docOpener: null, seq: 0, coverage: null };
  /** The conversation as data: one record a turn ({question, subject, result | error, votes}). */
  let turns = [];
  const docCache = new Map();
  const copyTimers = new WeakMap();
  const sending = new WeakSet();
  const closeReasonForms = new WeakMap();
  let ui = null;

  if (document.body) init();
  else document.addEventListener('DOMContentLoaded', init, { once: true });

  // --- configuration -------------------------------------------------------------------

  function lastWidgetScript() {
    const all = document.querySelectorAll('script[src*="widget.js"]');
    return all.length ? all[all.length - 1] : null;
  }

  function readConfig(tag) {
    const attr = (name) => ((tag && tag.getAttribute('data-' + name)) || '').trim();
    let api = attr('api');
    if (!api) {
      try {
        api = new URL(tag.src, document.baseURI).origin;
      } catch (_) {
        api = window.location.origin;
      }
    }
    const timeout = parseInt(attr('timeout'), 10);
    return {
      api: api.replace(/\/+$/, ''),
      open: attr('open').toLowerCase() === 'true',
      timeout: timeout > 0 ? timeout : DEFAULT_TIMEOUT_MS,
      title: attr('title') || 'Drug information',
      apiKey: attr('api-key'),
    };
  }

  // --- DOM helpers (text only) ---------------------------------------------------------

  function el(tag, attrs, children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === 'text') node.textContent = String(value);
      else if (key === 'class') node.className = value;
      else node.setAttribute(key, value === true ? '' : String(value));
    }
    for (const child of children || []) if (child) node.append(child);
    return node;
  }

  function button(cls, text, attrs) {
    return el('button', Object.assign({ type: 'button', class: cls, text }, attrs));
  }

  function iconButton(cls, icon, attrs) {
    const node = button(cls, '', attrs);
    node.append(icon);
    return node;
  }

  /** A thumb drawn as SVG (no emoji font needed); `down` turns it upside down. */
  function thumbIcon(down) {
    const ns = 'http://www.w3.org/2000/svg';
    const svg = document.createElementNS(ns, 'svg');
    svg.setAttribute('viewBox', '0 0 24 24');
    svg.setAttribute('width', '16');
    svg.setAttribute('height', '16');
    svg.setAttribute('aria-hidden', 'true');
    svg.setAttribute('focusable', 'false');
    const path = document.createElementNS(ns, 'path');
    path.setAttribute('fill', 'currentColor');
    path.setAttribute('d', 'M2 21h4V9H2v12zm20-10.5c0-1.1-.9-2-2-2h-6.3l1-4.6v-.3c0-.4-.2-.8-.5-1.1L13.2 1.5 7.6 7.1' +
      'C7.2 7.5 7 8 7 8.5V19c0 1.1.9 2 2 2h8.5c.8 0 1.5-.5 1.8-1.2l2.6-6.3c.1-.2.1-.5.1-.7v-2.3z');
    if (down) path.setAttribute('transform', 'rotate(180 12 12)');
    svg.append(path);
    return svg;
  }

  function nextId(prefix) {
    state.seq += 1;
    return `drugqa-${prefix}-${state.seq}`;
  }

  // --- building the widget -------------------------------------------------------------

  function init() {
    if (document.getElementById('drugqa-widget')) return;
    ui = buildUi();
    bindEvents();
    restoreConversation();
    updateStart();
    if (config.open) setOpen(true, false);
  }

  function buildUi() {
    const host = el('div', { id: 'drugqa-widget' });
    const root = host.attachShadow({ mode: 'open' });
    const u = { host, root };
    // Named by its visible text alone (WCAG 2.5.3: what is seen is what a voice user says);
    // aria-expanded tells whether the panel it controls is open.
    u.launcher = button('launcher', 'Ask the leaflets', { 'aria-expanded': 'false', 'aria-controls': PANEL_ID });
    u.title = el('h2', { class: 'title', id: TITLE_ID, text: config.title });
    u.newConversation = button('new-conversation', 'New conversation');
    u.close = button('close', '×', { 'aria-label': 'Close' });
    u.log = el('div', {
      class: 'log', role: 'log', 'aria-live': 'polite', 'aria-relevant': 'additions', 'aria-label': 'Conversation',
    });
    u.startIntro = el('p', { class: 'start-intro', text: 'Ask a question about a medicine: every answer is quoted from the documents, with its source.' });
    u.startCovers = el('p', { class: 'start-covers', hidden: true });
    u.examplesLabel = el('p', { class: 'examples-label', id: 'drugqa-examples-label', text: 'For example:', hidden: true });
    u.examples = el('ul', { class: 'examples', 'aria-labelledby': 'drugqa-examples-label', hidden: true });
    u.start = el('div', { class: 'start', role: 'region', 'aria-label': 'What you can ask' }, [
      u.startIntro, u.startCovers, u.examplesLabel, u.examples,
    ]);
    u.docTitle = el('h3', { class: 'document-title' });
    u.back = button('back', 'Back to answers');
    u.docText = el('div', { class: 'document-text', tabindex: '0' });
    u.docView = el('div', { class: 'document-view', role: 'region', 'aria-label': 'Document', hidden: true }, [
      el('div', { class: 'document-header' }, [u.docTitle, u.back]),
      u.docText,
    ]);
    u.input = el('input', {
      type: 'text', class: 'question', name: 'question', 'aria-label': 'Your question',
      placeholder: 'Ask about a medicine…', maxlength: '2000', autocomplete: 'off',
    });
    u.send = el('button', { type: 'submit', class: 'send', text: 'Ask' });
    u.form = el('form', { class: 'ask-form' }, [u.input, u.send]);
    u.announcer = el('div', { class: 'visually-hidden announcer', role: 'status', 'aria-live': 'polite' });
    u.panel = el('section', {
      class: 'panel', id: PANEL_ID, role: 'dialog', 'aria-modal': 'false', 'aria-labelledby': TITLE_ID, hidden: true,
    }, [
      el('header', { class: 'panel-header' }, [u.title, u.newConversation, u.close]),
      el('div', { class: 'panel-body' }, [u.start, u.log, u.docView]),
      u.form,
      el('p', { class: 'disclaimer', text: 'Answers are quotations from the documents, not medical advice.' }),
      u.announcer,
    ]);
    // Shown once the stylesheet has loaded (or failed to), so the page never sees unstyled controls.
    const frame = el('div', { class: 'frame', hidden: true }, [u.launcher, u.panel]);
    const sheet = el('link', { rel: 'stylesheet', href: config.api + '/widget.css' });
    const reveal = () => { frame.hidden = false; };
    sheet.addEventListener('load', reveal, { once: true });
    sheet.addEventListener('error', reveal, { once: true });
    setTimeout(reveal, 3000);
    root.append(sheet, frame);
    document.body.appendChild(host);
    return u;
  }

  function bindEvents() {
    ui.launcher.addEventListener('click', () => setOpen(ui.panel.hidden, true));
    ui.close.addEventListener('click', () => setOpen(false, true));
    ui.newConversation.addEventListener('click', newConversation);
    ui.back.addEventListener('click', () => closeDocument(true));
    ui.form.addEventListener('submit', onSubmit);
    ui.panel.addEventListener('keydown', (event) => {
      if (event.key !== 'Escape') return;
      event.preventDefault();
      event.stopPropagation();
      const form = event.target.closest && event.target.closest('.reason-form');
      if (form && !form.hidden && closeReasonForms.has(form)) closeReasonForms.get(form)(true);
      else if (!ui.docView.hidden) closeDocument(true);
      else setOpen(false, true);
    });
  }

  function setOpen(open, moveFocus) {
    ui.panel.hidden = !open;
    ui.launcher.setAttribute('aria-expanded', String(open));
    if (open) {
      loadCoverage();
      if (moveFocus) ui.input.focus();
    } else {
      closeDocument(false);
      if (moveFocus) ui.launcher.focus();
    }
  }

  function newConversation() {
    if (state.inflight) state.inflight.abort();
    closeDocument(false);
    ui.log.replaceChildren();
    turns = [];
    saveConversation();
    updateStart();
    ui.input.focus();
  }

  // --- the start: what the index covers --------------------------------------------------

  /** The start shows while the conversation is empty. */
  function updateStart() {
    ui.start.hidden = ui.log.childElementCount > 0;
  }

  /** GET /v1/coverage, once it answers (asked again on the next opening after a failure). */
  async function loadCoverage() {
    if (state.coverage) return;
    state.coverage = 'loading';
    let data = null;
    try {
      const result = await callApi('GET', '/v1/coverage');
      if (result.ok) data = result.data;
    } catch (_) {
      data = null;
    }
    const readable = data && Array.isArray(data.subjects) && Number.isInteger(data.documents) && Array.isArray(data.examples);
    state.coverage = readable ? data : null;
    if (readable) renderCoverage(data);
  }

  function namesSaid(names) {
    if (names.length > MAX_NAMES_SHOWN) {
      const rest = names.length - MAX_NAMES_SHOWN;
      return `${names.slice(0, MAX_NAMES_SHOWN).join(', ')} and ${rest} other${rest > 1 ? 's' : ''}`;
    }
    if (names.length <= 1) return names.join('');
    return `${names.slice(0, -1).join(', ')} and ${names[names.length - 1]}`;
  }

  function renderCoverage(data) {
    const names = data.subjects.map(String);
    const count = data.documents;
    const documents = `${count} document${count === 1 ? '' : 's'}`;
    ui.startCovers.textContent = names.length
      ? `Its ${documents} ${count === 1 ? 'is' : 'are'} about ${namesSaid(names)}.`
      : `It has ${documents}.`;
    ui.startCovers.hidden = false;
    const examples = data.examples.map(String).filter((q) => q.trim());
    ui.examples.replaceChildren(...examples.map((question) => {
      const example = button('example', question);
      example.addEventListener('click', () => askNew(question, null));
      return el('li', {}, [example]);
    }));
    ui.examples.hidden = ui.examplesLabel.hidden = !examples.length;
  }

  // --- memory: the conversation, kept in this tab ---------------------------------------

  function storageKey() {
    return `${STORE_KEY}:${config.api}`;
  }

  function saveConversation() {
    let kept = turns.slice(-MAX_STORED_TURNS);
    while (true) {
      try {
        if (kept.length) window.sessionStorage.setItem(storageKey(), JSON.stringify({ v: STORE_VERSION, turns: kept }));
        else window.sessionStorage.removeItem(storageKey());
        return;
      } catch (_) {
        if (!kept.length) return; // no storage here (disabled, sandboxed): the conversation lives with the page
        kept = kept.slice(1); // full: the oldest turns go first
      }
    }
  }

  /** The turns stored by this tab, drawn again from their data (as text, as when they came). */
  function restoreConversation() {
    let stored = null;
    try {
      stored = JSON.parse(window.sessionStorage.getItem(storageKey()) || 'null');
    } catch (_) {
      stored = null;
    }
    if (!stored || stored.v !== STORE_VERSION || !Array.isArray(stored.turns)) return;
    for (const item of stored.turns) {
      if (!item || typeof item.question !== 'string' || !item.question.trim()) continue;
      const record = {
        question: item.question,
        subject: typeof item.subject === 'string' ? item.subject : null,
        votes: item.votes && typeof item.votes === 'object' ? item.votes : {},
      };
      if (item.result && typeof item.result === 'object') record.result = item.result;
      else if (typeof item.error === 'string') record.error = item.error;
      turns.push(record);
      const turn = startTurn(record);
      let block;
      try {
        if (record.result) block = renderResult(turn, record, record.result);
        else block = renderError(turn, record, record.error || RELOADED);
      } catch (_) {
        block = renderError(turn, record, UNREADABLE);
      }
      turn.append(block);
    }
  }

  function announce(text) {
    ui.announcer.textContent = text;
    setTimeout(() => { if (ui.announcer.textContent === text) ui.announcer.textContent = ''; }, COPIED_MS);
  }

  // --- API client ----------------------------------------------------------------------

  /** Resolves to {ok, status, data}; rejects on network failure, timeout or abort. */
  async function callApi(method, path, body, outerSignal) {
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), config.timeout);
    const onOuterAbort = () => controller.abort();
    if (outerSignal) outerSignal.addEventListener('abort', onOuterAbort, { once: true });
    try {
      const headers = { Accept: 'application/json' };
      if (body !== undefined) headers['Content-Type'] = 'application/json';
      if (config.apiKey) headers.Authorization = 'Bearer ' + config.apiKey;
      const response = await fetch(config.api + path, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: controller.signal,
        credentials: 'omit',
      });
      let data = null;
      try {
        data = await response.json();
      } catch (err) {
        if (controller.signal.aborted) throw err;
      }
      return { ok: response.ok, status: response.status, data };
    } finally {
      clearTimeout(timer);
      if (outerSignal) outerSignal.removeEventListener('abort', onOuterAbort);
    }
  }

  function errorMessage(result) {
    const message = result.data && result.data.error && result.data.error.message;
    if (result.status === 503 && message) return `The service is not ready: ${message}`;
    if (result.status >= 500) return UNREACHABLE;
    if (message) return String(message);
    return `The request could not be processed (HTTP ${result.status}).`;
  }

  function loadDocument(docId) {
    if (!docCache.has(docId)) {
      const promise = callApi('GET', '/v1/documents/' + encodeURIComponent(docId)).then((result) => {
        if (!result.ok || !result.data || typeof result.data.text !== 'string') throw new Error(errorMessage(result));
        return result.data;
      });
      promise.catch(() => docCache.delete(docId));
      docCache.set(docId, promise);
    }
    return docCache.get(docId);
  }

  // --- asking --------------------------------------------------------------------------

  function onSubmit(event) {
    event.preventDefault();
    askNew(ui.input.value.trim(), null);
  }

  /** Asks ``question`` as a new turn (only of the documents about ``subject``, when given). */
  function askNew(question, subject) {
    if (!question || state.busy) return;
    const record = { question, subject, votes: {} };
    turns.push(record);
    saveConversation();
    ask(startTurn(record), record);
  }

  function startTurn(record) {
    const turn = el('div', { class: 'turn' }, [
      el('p', { class: 'turn-question', text: record.question }),
      record.subject ? el('p', { class: 'turn-scope', text: `Only the documents about ${record.subject}` }) : null,
    ]);
    ui.log.append(turn);
    updateStart();
    return turn;
  }

  async function ask(turn, record) {
    const question = record.question;
    state.busy = true;
    ui.send.disabled = true;
    ui.panel.setAttribute('aria-busy', 'true');
    const working = el('div', { class: 'working', role: 'status', text: 'Searching the documents…' });
    turn.append(working);
    ui.log.scrollTop = ui.log.scrollHeight;
    const controller = new AbortController();
    state.inflight = controller;
    let result = null;
    let block;
    try {
      // highlight: each answer comes with the offsets of the query terms the service matched in it
      const body = { question, top_k: 5, highlight: true };
      if (record.subject) body.filter = { subject: [record.subject] };
      result = await callApi('POST', '/v1/ask', body, controller.signal);
      block = renderResult(turn, record, result);
      delete record.error;
      record.result = { ok: result.ok, status: result.status, data: result.data };
    } catch (_) {
      block = renderError(turn, record, result ? UNREADABLE : UNREACHABLE);
      delete record.result;
      record.error = result ? UNREADABLE : UNREACHABLE;
    } finally {
      working.remove();
      state.busy = false;
      state.inflight = null;
      ui.send.disabled = false;
      ui.panel.removeAttribute('aria-busy');
    }
    if (!turn.isConnected) return; // the conversation was cleared meanwhile
    saveConversation();
    turn.append(block);
    ui.log.scrollTop = Math.max(0, turn.offsetTop - 8); // the newest exchange, from its question
    if (ui.input.value.trim() === question) ui.input.value = '';
    if (!ui.panel.hidden && ui.docView.hidden) ui.input.focus();
  }

  function renderResult(turn, record, result) {
    if (!result.ok) return renderError(turn, record, errorMessage(result));
    const data = result.data;
    if (!data || typeof data.answered !== 'boolean' || !Array.isArray(data.answers)) {
      return renderError(turn, record, UNREADABLE);
    }
    if (data.answered && data.answers.length) return renderAnswers(record, data.answers, data);
    return renderDeclined(record, data);
  }

  function renderError(turn, record, message) {
    const retry = button('retry', 'Retry');
    const block = el('div', { class: 'turn-error', role: 'alert' }, [el('p', { text: message }), retry]);
    retry.addEventListener('click', () => {
      if (state.busy) return;
      block.remove();
      ask(turn, record);
    });
    return block;
  }

  /** The choices of an ambiguous question as data: [{word, names}] with text only. */
  function choicesOf(data) {
    if (!Array.isArray(data.choices)) return [];
    return data.choices
      .filter((c) => c && typeof c.word === 'string' && c.word && Array.isArray(c.names))
      .map((c) => ({ word: c.word, names: c.names.map(String).filter((n) => n.trim()) }))
      .filter((c) => c.names.length);
  }

  /** ``question`` with every whole-word ``word`` (any case) replaced by ``name``. */
  function replaceWord(question, word, name) {
    const escaped = word.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    const pattern = new RegExp(`(^|[^\\p{L}\\p{N}])${escaped}(?=$|[^\\p{L}\\p{N}])`, 'giu');
    const replaced = question.replace(pattern, (_, before) => before + name);
    return replaced === question ? `${question} (${name})` : replaced;
  }

  function renderDeclined(record, data) {
    const choices = choicesOf(data);
    const block = el('div', { class: 'turn-declined' }, [
      el('p', { text: "The documents don't answer this question." }),
      data.reason ? el('p', { class: 'reason', text: String(data.reason) }) : null,
    ]);
    for (const choice of choices) {
      const labelId = nextId('choices');
      const group = el('div', { class: 'choices', role: 'group', 'aria-labelledby': labelId }, [
        el('p', { class: 'choices-label', id: labelId, text: `Which did you mean by “${choice.word}”?` }),
      ]);
      for (const name of choice.names) {
        const pick = button('choice', name);
        pick.addEventListener('click', () => askNew(replaceWord(record.question, choice.word, name), record.subject));
        group.append(pick);
      }
      block.append(group);
    }
    if (!choices.length) {
      block.append(el('p', { text: "Try rephrasing it, for example with the medicine's name or a more specific term." }));
    }
    return block;
  }

  function renderAnswers(record, answers, data) {
    const question = record.question;
    const groups = new Map();
    for (const answer of answers) {
      const docId = String(answer.citation.doc_id);
      if (!groups.has(docId)) groups.set(docId, []);
      groups.get(docId).push(answer);
    }
    const container = el('div', { class: 'turn-answers' });
    const subjects = Array.isArray(data && data.subjects) ? data.subjects.map(String) : [];
    if (subjects.length) {
      // The medicines the question named: the answers come only from documents about them.
      container.append(el('p', { class: 'subjects-note', text: `About ${subjects.join(' and ')}: answers from the documents about ${subjects.length > 1 ? 'them' : 'it'}.` }));
    } else if (data && data.notice) {
      container.append(el('p', { class: 'subjects-note warning', role: 'note', text: String(data.notice) }));
      const names = Array.isArray(data.notice_subjects) ? data.notice_subjects.map(String).filter((n) => n.trim()) : [];
      if (names.length > 1 && !record.subject) {
        // One chip a medicine: the same question, asked of that medicine's documents only.
        const labelId = nextId('narrow');
        const chips = el('div', { class: 'narrow', role: 'group', 'aria-labelledby': labelId }, [
          el('p', { class: 'narrow-label', id: labelId, text: 'Ask about one of them:' }),
        ]);
        for (const name of names) {
          const chip = button('chip', name);
          chip.addEventListener('click', () => askNew(question, name));
          chips.append(chip);
        }
        container.append(chips);
      }
    }
    if (groups.size > 1) {
      container.append(el('p', {
        class: 'sources-note', text: `${groups.size} documents answer this; each source is shown separately.`,
      }));
    }
    for (const [docId, list] of groups) {
      const group = el('div', { class: 'source-group', 'data-doc-id': docId }, [
        el('h3', { class: 'source-title', text: list[0].citation.title || docId }),
      ]);
      for (const answer of list) group.append(renderAnswer(record, answer));
      container.append(group);
    }
    const silent = Array.isArray(data && data.silent) ? data.silent : [];
    if (silent.length) {
      // Documents about the medicine asked about that hold no answer: said, not guessed from.
      container.append(el('p', {
        class: 'silent-note',
        text: `No answer in: ${silent.map((s) => String(s.title || s.doc_id)).join('; ')}.`,
      }));
    }
    return container;
  }

  function voteKey(answer) {
    const c = answer.citation;
    return `${c.doc_id}:${c.start}-${c.end}`;
  }

  function renderAnswer(record, answer) {
    const question = record.question;
    const citation = answer.citation;
    const passage = answer.passage || { text: answer.text, start: citation.start, end: citation.end };
    const confidence = String(answer.confidence || '');
    const level = confidence.trim().split(/\s+/)[0].toLowerCase();
    const passageId = nextId('passage');

    const passageBox = el('div', { class: 'passage', id: passageId, hidden: true },
      splitAround(passage.text, citation.start - passage.start, citation.end - passage.start, answer.text));
    const showPassage = button('show-passage', 'Show passage', { 'aria-expanded': 'false', 'aria-controls': passageId });
    const openDoc = button('open-document', 'Open document');
    const copy = button('copy', 'Copy');
    const voted = record.votes ? record.votes[voteKey(answer)] : null;
    const up = iconButton('vote-up', thumbIcon(false), { 'aria-label': 'Helpful', 'aria-pressed': String(voted === 'up') });
    const formId = nextId('reason');
    const down = iconButton('vote-down', thumbIcon(true), {
      'aria-label': 'Not helpful', 'aria-pressed': String(voted === 'down'), 'aria-expanded': 'false', 'aria-controls': formId,
    });
    const status = el('span', { class: 'feedback-status', role: 'status' });
    const controls = { up, down, status };
    const reasonForm = buildReasonForm(formId, down, (reason, comment) =>
      sendFeedback(record, answer, 'down', controls, reason, comment));

    showPassage.addEventListener('click', () => {
      const show = passageBox.hidden;
      passageBox.hidden = !show;
      showPassage.setAttribute('aria-expanded', String(show));
      showPassage.textContent = show ? 'Hide passage' : 'Show passage';
    });
    openDoc.addEventListener('click', () => openDocument(answer, openDoc));
    copy.addEventListener('click', () => copyAnswer(answer, copy));
    up.addEventListener('click', () => {
      reasonForm.close(false);
      sendFeedback(record, answer, 'up', controls, null, null);
    });
    down.addEventListener('click', () => {
      if (reasonForm.form.hidden) reasonForm.open();
      else reasonForm.close(false);
    });

    return el('article', { class: 'answer', 'data-doc-id': String(citation.doc_id) }, [
      el('blockquote', { class: 'answer-text' }, markHighlights(answer.text, answer.highlights, citation.start)),
      el('div', { class: 'meta' }, [
        el('p', { class: 'citation', text: citation.section ? `${citation.title} · ${citation.section}` : citation.title }),
        el('span', { class: 'confidence' + (CONFIDENCE_LEVELS.has(level) ? ` confidence-${level}` : ''), text: confidence }),
      ]),
      el('div', { class: 'actions' }, [
        showPassage, openDoc, copy, el('span', { class: 'votes', role: 'group', 'aria-label': 'Was this answer helpful?' }, [up, down]), status,
      ]),
      reasonForm.form,
      passageBox,
    ]);
  }

  /** The short form a thumbs-down opens: what was wrong (one of four, or not said) and an optional
   *  comment; ``send(reason, comment)`` on Send, nothing on Cancel or Escape. */
  function buildReasonForm(id, opener, send) {
    const legendId = nextId('legend');
    const radios = REASONS.map(([value, label]) => {
      const input = el('input', { type: 'radio', name: id + '-choice', value, class: 'reason-choice' });
      return { input, label: el('label', { class: 'reason-option' }, [input, document.createTextNode(label)]) };
    });
    const commentId = nextId('comment');
    const comment = el('textarea', { id: commentId, class: 'reason-comment', rows: '2', maxlength: '2000' });
    const submit = el('button', { type: 'submit', class: 'send-reason', text: 'Send' });
    const cancel = button('cancel-reason', 'Cancel');
    const form = el('form', { class: 'reason-form', id, hidden: true, 'aria-labelledby': legendId }, [
      el('fieldset', { class: 'reason-choices' }, [
        el('legend', { id: legendId, text: 'What was wrong with this answer?' }),
        ...radios.map((r) => r.label),
      ]),
      el('label', { class: 'reason-comment-label', for: commentId, text: 'Comment (optional)' }),
      comment,
      el('div', { class: 'reason-actions' }, [submit, cancel]),
    ]);
    const handle = {
      form,
      open() {
        form.hidden = false;
        opener.setAttribute('aria-expanded', 'true');
        radios[0].input.focus();
      },
      close(restoreFocus) {
        if (form.hidden) return;
        form.hidden = true;
        opener.setAttribute('aria-expanded', 'false');
        if (restoreFocus) opener.focus();
      },
    };
    closeReasonForms.set(form, (restoreFocus) => handle.close(restoreFocus));
    cancel.addEventListener('click', () => handle.close(true));
    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      const checked = radios.find((r) => r.input.checked);
      const text = comment.value.trim();
      // (Send stays enabled and focused while it is sent: a second press is ignored, see sendFeedback)
      const sent = await send(checked ? checked.input.value : null, text || null);
      if (sent) {
        for (const r of radios) r.input.checked = false;
        comment.value = '';
        handle.close(true);
      }
    });
    return handle;
  }

  // --- highlighting --------------------------------------------------------------------

  /** The answer text as text nodes, with the ranges the service highlighted in <mark>. The ranges
   *  (`answer.highlights`) are offsets into the document's text, counted in characters (code points):
   *  `offset` (the citation's start) moves them into the answer, they are clipped to it, and
   *  overlapping ones are marked once. Nothing is marked when the reply has no usable ranges. */
  function markHighlights(text, highlights, offset) {
    const chars = Array.from(String(text)); // code points, as the service counts (not UTF-16 units)
    const ranges = [];
    if (Array.isArray(highlights) && Number.isInteger(offset)) {
      for (const range of highlights) {
        if (!range || !Number.isInteger(range.start) || !Number.isInteger(range.end)) continue;
        const from = Math.max(0, range.start - offset);
        const to = Math.min(chars.length, range.end - offset);
        if (from < to) ranges.push([from, to]);
      }
    }
    ranges.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
    const merged = [];
    for (const [from, to] of ranges) {
      const previous = merged[merged.length - 1];
      if (previous && from < previous[1]) previous[1] = Math.max(previous[1], to);
      else merged.push([from, to]);
    }
    const nodes = [];
    let last = 0;
    for (const [from, to] of merged) {
      if (from > last) nodes.push(document.createTextNode(chars.slice(last, from).join('')));
      nodes.push(el('mark', { text: chars.slice(from, to).join('') }));
      last = to;
    }
    if (last < chars.length) nodes.push(document.createTextNode(chars.slice(last).join('')));
    return nodes;
  }

  /** Three nodes: the text before the answer, the answer in <mark class="answer-mark">, the rest. */
  function splitAround(text, start, end, expected) {
    text = String(text);
    let from = start;
    let to = end;
    const valid = Number.isInteger(from) && Number.isInteger(to) && from >= 0 && from <= to && to <= text.length;
    if (!valid) {
      const found = expected ? text.indexOf(expected) : -1;
      from = found >= 0 ? found : 0;
      to = found >= 0 ? found + expected.length : 0;
    }
    return [
      document.createTextNode(text.slice(0, from)),
      el('mark', { class: 'answer-mark', text: text.slice(from, to) }),
      document.createTextNode(text.slice(to)),
    ];
  }

  // --- the document viewer -------------------------------------------------------------

  async function openDocument(answer, opener) {
    const citation = answer.citation;
    const token = ++state.docToken;
    state.docOpener = opener;
    ui.docTitle.textContent = citation.title;
    ui.docText.replaceChildren(el('p', { class: 'document-loading', text: 'Loading the document…' }));
    ui.docView.hidden = false;
    ui.log.inert = true;
    ui.back.focus();
    let doc;
    try {
      doc = await loadDocument(String(citation.doc_id));
    } catch (_) {
      if (token === state.docToken && !ui.docView.hidden) {
        ui.docText.replaceChildren(el('p', {
          class: 'document-error', role: 'alert', text: 'The document could not be loaded.',
        }));
      }
      return;
    }
    if (token !== state.docToken || ui.docView.hidden) return;
    ui.docTitle.textContent = doc.title || citation.title;
    const parts = splitAround(doc.text, citation.start, citation.end, answer.text);
    const mark = parts[1];
    mark.tabIndex = -1;
    ui.docText.replaceChildren(...parts);
    ui.docText.scrollTop = 0;
    mark.scrollIntoView({ block: 'center' });
    mark.focus({ preventScroll: true });
  }

  function closeDocument(restoreFocus) {
    if (ui.docView.hidden) return;
    state.docToken += 1;
    ui.docView.hidden = true;
    ui.docText.replaceChildren();
    ui.log.inert = false;
    const opener = state.docOpener;
    state.docOpener = null;
    if (restoreFocus && opener && opener.isConnected) opener.focus();
    else if (restoreFocus) ui.input.focus();
  }

  // --- copy ----------------------------------------------------------------------------

  function citationLine(citation) {
    return citation.section ? `Source: ${citation.title}, ${citation.section}` : `Source: ${citation.title}`;
  }

  async function copyAnswer(answer, copyButton) {
    const text = `"${answer.text}"\n${citationLine(answer.citation)}`;
    let copied = false;
    try {
      if (!navigator.clipboard || !navigator.clipboard.writeText) throw new Error('no clipboard API');
      await navigator.clipboard.writeText(text);
      copied = true;
    } catch (_) {
      copied = copyWithTextarea(text, copyButton);
    }
    copyButton.textContent = copied ? 'Copied' : 'Copy failed';
    if (copied) announce('Answer copied');
    clearTimeout(copyTimers.get(copyButton));
    copyTimers.set(copyButton, setTimeout(() => { copyButton.textContent = 'Copy'; }, COPIED_MS));
  }

  function copyWithTextarea(text, returnFocusTo) {
    const buffer = el('textarea', { class: 'copy-buffer', readonly: true, tabindex: '-1', 'aria-hidden': 'true' });
    buffer.value = text;
    ui.panel.append(buffer);
    let ok = false;
    try {
      buffer.select();
      ok = document.execCommand('copy');
    } catch (_) {
      ok = false;
    }
    buffer.remove();
    returnFocusTo.focus();
    return ok;
  }

  // --- feedback ------------------------------------------------------------------------

  /** Sends a vote (a down one with its reason and comment, when given); resolves to whether it was stored. */
  async function sendFeedback(record, answer, vote, controls, reason, comment) {
    const { up, down, status } = controls;
    if (sending.has(status)) return false; // one vote at a time per answer (buttons stay focusable)
    sending.add(status);
    status.textContent = '';
    try {
      const body = { question: record.question, citation: answer.citation, answer: answer.text, vote, comment: comment || null };
      if (reason) body.reason = reason;
      const result = await callApi('POST', '/v1/feedback', body);
      if (!result.ok) throw new Error(errorMessage(result));
      up.setAttribute('aria-pressed', String(vote === 'up'));
      down.setAttribute('aria-pressed', String(vote === 'down'));
      status.textContent = 'Thanks for the feedback.';
      if (record.votes) {
        record.votes[voteKey(answer)] = vote;
        if (turns.includes(record)) saveConversation();
      }
      return true;
    } catch (_) {
      status.textContent = 'Feedback could not be sent.';
      return false;
    } finally {
      sending.delete(status);
    }
  }
})();
