/* Drug information QA: the lead's review page (/admin).
 *
 * The admin token is typed once into the sign-in form, kept in sessionStorage (this tab only) and sent
 * as "Authorization: Bearer ..." with every request; it is never put in a URL. Downloads are fetched
 * with it too and handed to the browser as a Blob.
 *
 * Every string from the service is rendered as text (createElement + textContent only): the page's
 * Content-Security-Policy has Trusted Types with no policy, so any HTML sink would throw.
 */
(function () {
  'use strict';

  const TOKEN_KEY = 'qa-review-token';
  const REPORTS = {
    unanswered: { path: '/v1/admin/unanswered/groups', limit: 200 },
    'thumbs-down': { path: '/v1/admin/thumbs-down', limit: 200 },
    'most-asked': { path: '/v1/admin/most-asked', limit: 20 },
  };
  const EXPORT_LIMIT = 10000;
  const REVOKE_AFTER_MS = 60000;
  const FEEDBACK_REASONS = {
    wrong_medicine: 'Wrong medicine',
    wrong_section: 'Wrong section',
    outdated: 'Outdated',
    other: 'Other',
  };

  /** The token was refused (401): the reader signs in again. */
  class TokenRefused extends Error {}
  /** Anything else that went wrong, with a message for the reader. */
  class ServiceError extends Error {}

  const ui = {};
  const busy = new WeakSet(); // buttons whose work is under way (not disabled: that would drop the focus)
  let token = null;
  let loading = 0;

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', init, { once: true });
  else init();

  function init() {
    for (const id of ['sign-in', 'token', 'sign-in-error', 'review', 'refresh', 'sign-out', 'status', 'load-error',
      'unanswered-list', 'unanswered-empty', 'thumbs-down-list', 'thumbs-down-empty', 'most-asked-list',
      'most-asked-empty', 'unanswered-title']) {
      ui[id] = document.getElementById(id);
    }
    ui['sign-in'].addEventListener('submit', onSignIn);
    ui.refresh.addEventListener('click', () => {
      if (!busy.has(ui.refresh)) show(token, { refreshed: true });
    });
    ui['sign-out'].addEventListener('click', () => signOut('Signed out.'));
    for (const button of document.querySelectorAll('button[data-report]')) {
      button.addEventListener('click', () => download(button));
    }
    const saved = readToken();
    if (saved) {
      ui['sign-in'].hidden = true;
      ui.review.hidden = false;
      show(saved, { saved: true });
    } else {
      ui.token.focus();
    }
  }

  // --- the token ---------------------------------------------------------------------------

  function readToken() {
    try {
      return sessionStorage.getItem(TOKEN_KEY);
    } catch (_) {
      return null; // storage switched off: the reader signs in on each load
    }
  }

  function keepToken(value) {
    token = value;
    try {
      if (value === null) sessionStorage.removeItem(TOKEN_KEY);
      else sessionStorage.setItem(TOKEN_KEY, value);
    } catch (_) {
      /* kept in memory for this page only */
    }
  }

  async function onSignIn(event) {
    event.preventDefault();
    const value = ui.token.value.trim();
    if (!value) {
      signInError('Enter the admin token.');
      return;
    }
    const button = ui['sign-in'].querySelector('button[type="submit"]');
    if (busy.has(button)) return;
    setBusy(button, true);
    ui['sign-in-error'].textContent = '';
    ui.status.textContent = 'Signing in…';
    try {
      await show(value, { signingIn: true });
    } finally {
      setBusy(button, false);
    }
  }

  function setBusy(button, on) {
    if (on) {
      busy.add(button);
      button.setAttribute('aria-disabled', 'true');
    } else {
      busy.delete(button);
      button.removeAttribute('aria-disabled');
    }
  }

  function signInError(message) {
    ui['sign-in'].hidden = false;
    ui.review.hidden = true;
    ui['sign-in-error'].textContent = message;
    ui.token.setAttribute('aria-invalid', 'true');
    ui.token.focus();
    ui.token.select();
  }

  function signOut(message, error) {
    keepToken(null);
    for (const name of Object.keys(REPORTS)) {
      ui[name + '-list'].replaceChildren();
      ui[name + '-empty'].hidden = true;
    }
    ui.token.value = '';
    ui.status.textContent = message || '';
    ui['load-error'].textContent = '';
    if (error) {
      signInError(error);
    } else {
      ui['sign-in-error'].textContent = '';
      ui.token.removeAttribute('aria-invalid');
      ui['sign-in'].hidden = false;
      ui.review.hidden = true;
      ui.token.focus();
    }
  }

  // --- talking to the service --------------------------------------------------------------

  async function call(path, secret) {
    let response;
    try {
      response = await fetch(path, {
        headers: { Authorization: 'Bearer ' + secret },
        cache: 'no-store',
        credentials: 'omit',
        referrerPolicy: 'no-referrer',
      });
    } catch (_) {
      throw new ServiceError("The service can't be reached. Check that it is running, then try again.");
    }
    if (response.ok) return response;
    let code = '';
    try {
      const body = await response.json();
      code = String((body && body.error && body.error.code) || '');
    } catch (_) {
      /* no envelope: the status says enough */
    }
    throw failure(response.status, code, response.headers.get('Retry-After'));
  }

  function failure(status, code, retry) {
    const wait = retry ? ` Try again in ${retry} seconds.` : ' Try again later.';
    if (status === 401) return new TokenRefused('That admin token was not accepted. Check it and try again.');
    if (status === 403 && code === 'admin_disabled') {
      return new ServiceError('The review is switched off on this server: it has no admin token set (QA_ADMIN_TOKEN).');
    }
    if (status === 429 && code === 'too_many_failures') {
      return new ServiceError('Too many wrong tokens were sent from this address.' + wait);
    }
    if (status === 429) return new ServiceError('Too many requests.' + wait);
    if (status === 503) return new ServiceError('The service is busy or still starting.' + wait);
    return new ServiceError(`The service answered with an error (${status}${code ? ', ' + code : ''}).`);
  }

  async function report(name, secret) {
    const { path, limit } = REPORTS[name];
    const response = await call(`${path}?limit=${limit}`, secret);
    try {
      const body = await response.json();
      if (Array.isArray(body)) return body;
    } catch (_) {
      /* falls through */
    }
    throw new ServiceError('The service sent a report this page cannot read.');
  }

  // --- showing the reports -----------------------------------------------------------------

  async function show(secret, how) {
    const mine = ++loading;
    setBusy(ui.refresh, true);
    if (!how.signingIn) ui.status.textContent = 'Loading…';
    let found;
    try {
      found = await Promise.all(Object.keys(REPORTS).map((name) => report(name, secret)));
    } catch (error) {
      if (mine !== loading) return;
      setBusy(ui.refresh, false);
      if (error instanceof TokenRefused) {
        signOut('', how.signingIn || !how.saved ? error.message : 'The saved admin token is no longer accepted. Sign in again.');
        return;
      }
      if (how.signingIn) {
        ui.status.textContent = '';
        signInError(error.message);
        return;
      }
      ui.review.hidden = false;
      ui.status.textContent = '';
      ui['load-error'].textContent = error.message;
      return;
    }
    if (mine !== loading) return;
    setBusy(ui.refresh, false);
    keepToken(secret);
    const [groups, votes, asked] = found;
    render('unanswered', groups, unansweredCard);
    render('thumbs-down', votes, thumbsDownCard);
    render('most-asked', asked, askedCard);
    ui['load-error'].textContent = '';
    ui['sign-in-error'].textContent = '';
    ui.token.value = '';
    ui.token.removeAttribute('aria-invalid');
    ui['sign-in'].hidden = true;
    ui.review.hidden = false;
    ui.status.textContent = `${how.refreshed ? 'Updated' : 'Loaded'}: ${plural(groups.length, 'group')} of unanswered ` +
      `questions, ${plural(votes.length, 'thumbs-down answer')}, ${plural(asked.length, 'most asked question')}.`;
    if (how.signingIn) ui['unanswered-title'].focus();
  }

  function render(name, items, card) {
    ui[name + '-list'].replaceChildren(...items.map(card));
    ui[name + '-empty'].hidden = items.length > 0;
  }

  function unansweredCard(group) {
    const item = el('li', 'card group');
    item.append(el('p', 'question', group.question));
    item.append(counts(group.count, [
      `${group.declined} declined`,
      `${group.thumbs_down} thumbs-down`,
      `last ${when(group.last_asked)}`,
    ]));
    if (group.reasons.length) {
      const reasons = el('div', 'reasons');
      const list = el('ul');
      for (const reason of group.reasons) list.append(el('li', '', reason.replace(/_/g, ' ')));
      reasons.append(el('p', 'label', 'Declined because:'), list);
      item.append(reasons);
    }
    item.append(wordings(group.wordings));
    return item;
  }

  function thumbsDownCard(vote) {
    const item = el('li', 'card vote');
    item.append(el('p', 'question', vote.question));
    const reason = el('p', 'reason');
    reason.append(el('span', 'label', 'Reason: '), el('span', 'value',
      vote.reason ? FEEDBACK_REASONS[vote.reason] || vote.reason : 'none given'));
    item.append(reason);
    if (vote.comment) {
      const comment = el('p', 'comment');
      comment.append(el('span', 'label', 'Comment: '), el('span', 'value', vote.comment));
      item.append(comment);
    }
    if (vote.answer) item.append(el('blockquote', 'answer', vote.answer));
    const cited = vote.citation;
    const where = [cited.title, cited.section].filter(Boolean).join(' — ');
    const citation = el('p', 'citation');
    citation.append(
      el('span', 'where', where || cited.doc_id),
      el('span', 'offsets', `, characters ${cited.start}–${cited.end}`),
      el('span', 'doc', ` (${cited.doc_id})`),
    );
    item.append(citation);
    item.append(el('p', 'meta', `Voted ${when(vote.created_at)}`));
    return item;
  }

  function askedCard(group) {
    const item = el('li', 'card asked');
    item.append(el('p', 'question', group.question));
    item.append(counts(group.count, [
      `${group.answered} answered`,
      `${group.count - group.answered} declined`,
      `last ${when(group.last_asked)}`,
    ]));
    item.append(wordings(group.wordings));
    return item;
  }

  function counts(count, parts) {
    const line = el('p', 'counts');
    line.append(el('span', 'count', String(count)), ` ${count === 1 ? 'time' : 'times'}: ${parts.join(', ')}`);
    return line;
  }

  function wordings(list) {
    if (list.length < 2) return document.createDocumentFragment();
    const details = el('details', 'wordings');
    details.append(el('summary', '', `Asked ${list.length} ways`));
    const ways = el('ul');
    for (const way of list) ways.append(el('li', '', `${way.question} (${way.count})`));
    details.append(ways);
    return details;
  }

  // --- downloads ---------------------------------------------------------------------------

  async function download(button) {
    const name = button.dataset.report;
    const format = button.dataset.format;
    if (busy.has(button)) return;
    setBusy(button, true);
    ui.status.textContent = `Preparing the ${format.toUpperCase()} file…`;
    try {
      const response = await call(`${REPORTS[name].path}?limit=${EXPORT_LIMIT}&format=${format}`, token);
      const blob = await response.blob();
      const file = fileName(response.headers.get('Content-Disposition'), `${name}.${format}`);
      const url = URL.createObjectURL(blob);
      const link = el('a', 'visually-hidden', file);
      link.href = url;
      link.download = file;
      document.body.append(link);
      link.click();
      link.remove();
      setTimeout(() => URL.revokeObjectURL(url), REVOKE_AFTER_MS);
      ui['load-error'].textContent = '';
      ui.status.textContent = `Downloaded ${file}.`;
    } catch (error) {
      if (error instanceof TokenRefused) {
        signOut('', 'The saved admin token is no longer accepted. Sign in again.');
        return;
      }
      ui.status.textContent = '';
      ui['load-error'].textContent = error.message;
    } finally {
      setBusy(button, false);
    }
  }

  function fileName(disposition, fallback) {
    const found = /filename="([^"\\/]+)"/.exec(disposition || '');
    return found ? found[1] : fallback;
  }

  // --- helpers -----------------------------------------------------------------------------

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function when(iso) {
    // "2026-12-07T13:51:04+00:00" (the service's times are UTC) as "2026-12-07 13:51 UTC"
    const found = /^(\d{4}-\d{2}-\d{2})T(\d{2}:\d{2})/.exec(String(iso || ''));
    return found ? `${found[1]} ${found[2]} UTC` : String(iso || '');
  }

  function plural(n, word) {
    return `${n} ${word}${n === 1 ? '' : 's'}`;
  }
})();
