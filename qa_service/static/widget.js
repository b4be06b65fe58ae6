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

  const script = document.currentScript || lastWidgetScript();
  const config = readConfig(script);
  const state = { busy: false, inflight: null, docToken: 0, docOpener: null, seq: 0 };
  const docCache = new Map();
  const copyTimers = new WeakMap();
  const sending = new WeakSet();
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
      el('div', { class: 'panel-body' }, [u.log, u.docView]),
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
      if (!ui.docView.hidden) closeDocument(true);
      else setOpen(false, true);
    });
  }

  function setOpen(open, moveFocus) {
    ui.panel.hidden = !open;
    ui.launcher.setAttribute('aria-expanded', String(open));
    if (open) {
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
    ui.input.focus();
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
    const question = ui.input.value.trim();
    if (!question || state.busy) return;
    const turn = el('div', { class: 'turn' }, [el('p', { class: 'turn-question', text: question })]);
    ui.log.append(turn);
    ask(turn, question);
  }

  async function ask(turn, question) {
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
      result = await callApi('POST', '/v1/ask', { question, top_k: 5, highlight: true }, controller.signal);
      block = renderResult(turn, question, result);
    } catch (_) {
      block = renderError(turn, question, result ? UNREADABLE : UNREACHABLE);
    } finally {
      working.remove();
      state.busy = false;
      state.inflight = null;
      ui.send.disabled = false;
      ui.panel.removeAttribute('aria-busy');
    }
    if (!turn.isConnected) return; // the conversation was cleared meanwhile
    turn.append(block);
    ui.log.scrollTop = Math.max(0, turn.offsetTop - 8); // the newest exchange, from its question
    if (ui.input.value.trim() === question) ui.input.value = '';
    if (!ui.panel.hidden && ui.docView.hidden) ui.input.focus();
  }

  function renderResult(turn, question, result) {
    if (!result.ok) return renderError(turn, question, errorMessage(result));
    const data = result.data;
    if (!data || typeof data.answered !== 'boolean' || !Array.isArray(data.answers)) {
      return renderError(turn, question, UNREADABLE);
    }
    if (data.answered && data.answers.length) return renderAnswers(question, data.answers, data);
    return renderDeclined(data.reason);
  }

  function renderError(turn, question, message) {
    const retry = button('retry', 'Retry');
    const block = el('div', { class: 'turn-error', role: 'alert' }, [el('p', { text: message }), retry]);
    retry.addEventListener('click', () => {
      if (state.busy) return;
      block.remove();
      ask(turn, question);
    });
    return block;
  }

  function renderDeclined(reason) {
    return el('div', { class: 'turn-declined' }, [
      el('p', { text: "The documents don't answer this question." }),
      reason ? el('p', { class: 'reason', text: reason }) : null,
      el('p', { text: "Try rephrasing it, for example with the medicine's name or a more specific term." }),
    ]);
  }

  function renderAnswers(question, answers, data) {
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
      for (const answer of list) group.append(renderAnswer(question, answer));
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

  function renderAnswer(question, answer) {
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
    const up = iconButton('vote-up', thumbIcon(false), { 'aria-label': 'Helpful', 'aria-pressed': 'false' });
    const down = iconButton('vote-down', thumbIcon(true), { 'aria-label': 'Not helpful', 'aria-pressed': 'false' });
    const status = el('span', { class: 'feedback-status', role: 'status' });

    showPassage.addEventListener('click', () => {
      const show = passageBox.hidden;
      passageBox.hidden = !show;
      showPassage.setAttribute('aria-expanded', String(show));
      showPassage.textContent = show ? 'Hide passage' : 'Show passage';
    });
    openDoc.addEventListener('click', () => openDocument(answer, openDoc));
    copy.addEventListener('click', () => copyAnswer(answer, copy));
    up.addEventListener('click', () => sendFeedback(question, answer, 'up', { up, down, status }));
    down.addEventListener('click', () => sendFeedback(question, answer, 'down', { up, down, status }));

    return el('article', { class: 'answer', 'data-doc-id': String(citation.doc_id) }, [
      el('blockquote', { class: 'answer-text' }, markHighlights(answer.text, answer.highlights, citation.start)),
      el('div', { class: 'meta' }, [
        el('p', { class: 'citation', text: citation.section ? `${citation.title} · ${citation.section}` : citation.title }),
        el('span', { class: 'confidence' + (CONFIDENCE_LEVELS.has(level) ? ` confidence-${level}` : ''), text: confidence }),
      ]),
      el('div', { class: 'actions' }, [
        showPassage, openDoc, copy, el('span', { class: 'votes', role: 'group', 'aria-label': 'Was this answer helpful?' }, [up, down]), status,
      ]),
      passageBox,
    ]);
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

  async function sendFeedback(question, answer, vote, controls) {
    const { up, down, status } = controls;
    if (sending.has(status)) return; // one vote at a time per answer (buttons stay focusable)
    sending.add(status);
    status.textContent = '';
    try {
      const result = await callApi('POST', '/v1/feedback', {
        question, citation: answer.citation, answer: answer.text, vote, comment: null,
      });
      if (!result.ok) throw new Error(errorMessage(result));
      up.setAttribute('aria-pressed', String(vote === 'up'));
      down.setAttribute('aria-pressed', String(vote === 'down'));
      status.textContent = 'Thanks for the feedback.';
    } catch (_) {
      status.textContent = 'Feedback could not be sent.';
    } finally {
      sending.delete(status);
    }
  }
})();
