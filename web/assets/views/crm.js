// The side panel: the contact, its linked CRM records (search, link, create and link, unlink) and
// the notes the conversation produced on them. The CRM endpoints may not be deployed yet: then the
// CRM part says so and the contact card stays.

import { api, describeError, withQuery } from '../api.js';
import { avatar, fill, h, icon } from '../dom.js';
import { fullTime, PROVIDERS, shortTime } from '../format.js';
import { emit, on, state, userName } from '../store.js';
import { errorToast } from './toast.js';

const TARGETS = {
  person: { label: 'Person', plural: 'persons' },
  lead: { label: 'Lead', plural: 'leads' },
  deal: { label: 'Deal', plural: 'deals' },
};

const records = new Map(); // "person:3" → record (or {missing: true})
const notesLoaded = new Set(); // conversation ids whose notes were fetched

function recordTitle(target, record) {
  if (!record) return `${TARGETS[target].label}`;
  if (record.missing) return `${TARGETS[target].label} (no longer available)`;
  return record.name || record.title || `${TARGETS[target].label} ${record.id}`;
}

function recordDetail(target, record) {
  if (!record || record.missing) return '';
  if (target === 'person') return [...(record.emails || []), ...(record.phones || [])].join(' · ');
  if (target === 'deal' && record.value != null) return `${record.value} ${record.currency || ''}`.trim();
  return '';
}

async function probeCrm() {
  if (state.crmAvailable) return;
  try {
    await api.get(withQuery('/api/v1/persons', { limit: 1 }));
    state.crmAvailable = true;
  } catch (error) {
    state.crmAvailable = error.missing ? false : state.crmAvailable;
  }
  emit('crm');
}

async function loadRecord(target, id) {
  const key = `${target}:${id}`;
  if (records.has(key)) return;
  records.set(key, null);
  try {
    records.set(key, await api.get(`/api/v1/${TARGETS[target].plural}/${id}`));
  } catch {
    records.set(key, { missing: true });
  }
  emit('crm');
}

async function loadNotes(conv) {
  if (notesLoaded.has(conv.id)) return;
  notesLoaded.add(conv.id);
  if (!state.notes.has(conv.id)) state.notes.set(conv.id, new Map());
  const mine = state.notes.get(conv.id);
  await Promise.all(
    (conv.links || []).map(async (link) => {
      try {
        const page = await api.get(withQuery('/api/v1/notes', { target: link.target, target_id: link.target_id, limit: 50 }));
        for (const note of page.items || page || []) {
          if (note.conversation_id === conv.id) mine.set(note.id, note);
        }
      } catch {
        // notes are optional; the links still show
      }
    }),
  );
  emit('notes');
}

function listOf(body) {
  return Array.isArray(body) ? body : body?.items || [];
}

export function mountCrm(root) {
  const contact = h('section', { class: 'card' });
  const crm = h('section', { class: 'card' });
  const notes = h('section', { class: 'card' });
  const close = h('button', { type: 'button', class: 'btn-icon crm-close', 'aria-label': 'Close details' }, icon('close'));
  close.addEventListener('click', () => {
    state.crmOpen = false;
    emit('crm');
  });
  root.addEventListener('keydown', (event) => {
    // As a drawer (narrow screens) Escape closes it; the link form handles its own Escape first.
    if (event.key === 'Escape' && !event.defaultPrevented && getComputedStyle(root).position === 'absolute') {
      state.crmOpen = false;
      emit('crm');
      document.querySelector('.details-toggle')?.focus();
    }
  });
  const linker = linkForm();
  const linksBox = h('div', { class: 'links-box' });
  let convId = null;

  const render = () => {
    const conv = state.route.name === 'conversation' ? state.convs.get(state.openId) : null;
    if (!conv) {
      fill(root);
      convId = null;
      return;
    }
    if (root.childElementCount === 0) {
      fill(root, h('div', { class: 'pane-header' }, h('h2', { class: 'pane-title' }, 'Details'), close), h('div', { class: 'pane-scroll' }, contact, crm, notes));
    }
    if (conv.id !== convId) {
      convId = conv.id;
      linker.reset(conv);
      probeCrm();
    }
    renderContact(contact, conv);
    if (state.crmAvailable === false) {
      fill(crm, h('h3', { class: 'card-title' }, 'CRM'), h('p', { class: 'muted' }, 'CRM records are not available on this server yet.'));
      notes.hidden = true;
      return;
    }
    notes.hidden = false;
    for (const link of conv.links || []) loadRecord(link.target, link.target_id);
    if (state.crmAvailable) loadNotes(conv);
    if (!crm.contains(linksBox)) {
      // Built once: re-rendering must not move the search box away from under the user's fingers.
      fill(crm, h('h3', { class: 'card-title' }, 'CRM records'), linksBox, linker.el);
    }
    renderLinks(linksBox, conv);
    renderNotes(notes, conv);
  };
  on(['open', 'convs', 'route', 'crm', 'notes', 'users'], render);
  render();
}

function renderContact(el, conv) {
  const assignee = conv.assignee_id != null ? userName(conv.assignee_id) : 'Unassigned';
  fill(
    el,
    h('div', { class: 'contact-head' }, avatar(conv.contact.name, conv.contact.id, 'avatar-lg'), h('div', {}, h('h3', { class: 'card-title' }, conv.contact.name), h('p', { class: 'muted' }, conv.contact.handle))),
    h(
      'dl',
      { class: 'facts' },
      h('dt', {}, 'Channel'),
      h('dd', {}, state.integrations.get(conv.integration_id)?.name || PROVIDERS[conv.provider] || conv.provider),
      h('dt', {}, 'Status'),
      h('dd', {}, conv.status === 'closed' ? 'Closed' : 'Open'),
      h('dt', {}, 'Assignee'),
      h('dd', {}, assignee),
      h('dt', {}, 'Started'),
      h('dd', {}, fullTime(conv.created_at)),
    ),
  );
}

function renderLinks(el, conv) {
  const links = conv.links || [];
  const items = links.map((link) => {
    const record = records.get(`${link.target}:${link.target_id}`);
    const detail = recordDetail(link.target, record);
    return h(
      'li',
      { class: 'record' },
      h('span', { class: `chip chip-${link.target}` }, TARGETS[link.target]?.label || link.target),
      h('span', { class: 'record-text' }, h('span', { class: 'record-title' }, recordTitle(link.target, record)), detail && h('span', { class: 'muted' }, detail)),
      h('button', { type: 'button', class: 'btn btn-small btn-quiet', 'aria-label': `Unlink ${recordTitle(link.target, record)}`, onclick: () => unlink(conv, link) }, 'Unlink'),
    );
  });
  fill(
    el,
    state.crmAvailable === null && h('p', { class: 'muted' }, 'Checking the CRM…'),
    items.length ? h('ul', { class: 'records' }, items) : h('p', { class: 'muted' }, 'Not linked to any person, lead or deal yet.'),
  );
}

function renderNotes(el, conv) {
  const notes = [...(state.notes.get(conv.id)?.values() || [])].sort((a, b) => b.id - a.id);
  fill(
    el,
    h('h3', { class: 'card-title' }, 'Notes from this conversation'),
    notes.length
      ? h(
          'ul',
          { class: 'notes' },
          notes.map((note) =>
            h(
              'li',
              { class: 'note' },
              h('div', { class: 'note-head' }, h('span', { class: `chip chip-${note.target}` }, TARGETS[note.target]?.label || note.target), h('time', { datetime: note.updated_at, title: fullTime(note.updated_at) }, shortTime(note.updated_at))),
              h('p', { class: 'note-text' }, note.content),
            ),
          ),
        )
      : h('p', { class: 'muted' }, 'Linking a record writes the conversation into a note on it.'),
  );
}

async function unlink(conv, link) {
  try {
    await api.del(`/api/v1/conversations/${conv.id}/links/${link.id}`);
    conv.links = (conv.links || []).filter((l) => l.id !== link.id);
    emit('convs', 'crm');
  } catch (error) {
    errorToast(describeError(error));
  }
}

function addLink(conv, result) {
  if (result?.link) conv.links = [...(conv.links || []).filter((l) => l.id !== result.link.id), result.link];
  if (result?.note) {
    if (!state.notes.has(conv.id)) state.notes.set(conv.id, new Map());
    state.notes.get(conv.id).set(result.note.id, result.note);
  }
  emit('convs', 'crm', 'notes');
}

// Search and link, or create and link --------------------------------------------------------

function linkForm() {
  let conv = null;
  let target = 'person';
  let timer = null;
  const toggle = h('button', { type: 'button', class: 'btn btn-small', 'aria-expanded': 'false' }, icon('link', 'icon-sm'), 'Link a record');
  const tabs = h('div', { class: 'segmented', role: 'radiogroup', 'aria-label': 'Record type' });
  const search = h('input', { type: 'search', class: 'input', placeholder: 'Search persons…', 'aria-label': 'Search records' });
  const results = h('ul', { class: 'results' });
  const createBox = h('div', { class: 'create-box' });
  const form = h('div', { class: 'link-form', hidden: true }, tabs, search, results, createBox);
  const el = h('div', { class: 'link-area' }, toggle, form);

  toggle.addEventListener('click', () => {
    form.hidden = !form.hidden;
    toggle.setAttribute('aria-expanded', String(!form.hidden));
    if (!form.hidden) {
      renderTabs();
      runSearch();
      search.focus();
    }
  });
  form.addEventListener('keydown', (event) => {
    if (event.key === 'Escape') {
      event.preventDefault();
      form.hidden = true;
      toggle.setAttribute('aria-expanded', 'false');
      toggle.focus();
    }
  });
  search.addEventListener('input', () => {
    clearTimeout(timer);
    timer = setTimeout(runSearch, 250);
  });

  function renderTabs() {
    fill(
      tabs,
      Object.entries(TARGETS).map(([key, t]) =>
        h('button', { type: 'button', role: 'radio', class: 'segment', 'aria-checked': String(key === target), onclick: () => { target = key; search.placeholder = `Search ${t.plural}…`; renderTabs(); runSearch(); } }, t.label),
      ),
    );
    renderCreate();
  }

  async function runSearch() {
    const term = search.value.trim();
    const forConv = conv;
    const forTarget = target;
    fill(results, h('li', { class: 'muted' }, 'Searching…'));
    try {
      // Persons are searched by the server; leads and deals are filtered here.
      const limit = forTarget === 'person' ? 20 : 100;
      const answer = await api.get(withQuery(`/api/v1/${TARGETS[forTarget].plural}`, { term, limit }));
      if (conv !== forConv || target !== forTarget) return;
      const lower = term.toLowerCase();
      const found = listOf(answer).filter((r) => !lower || recordTitle(forTarget, r).toLowerCase().includes(lower) || recordDetail(forTarget, r).toLowerCase().includes(lower));
      const linked = new Set((conv.links || []).filter((l) => l.target === forTarget).map((l) => l.target_id));
      fill(
        results,
        found.length
          ? found.slice(0, 10).map((record) =>
              h(
                'li',
                { class: 'result' },
                h('span', { class: 'record-text' }, h('span', { class: 'record-title' }, recordTitle(forTarget, record)), h('span', { class: 'muted' }, recordDetail(forTarget, record))),
                linked.has(record.id)
                  ? h('span', { class: 'muted' }, 'Linked')
                  : h('button', { type: 'button', class: 'btn btn-small', onclick: () => link({ target: forTarget, target_id: record.id }) }, 'Link'),
              ),
            )
          : h('li', { class: 'muted' }, term ? 'Nothing found.' : `No ${TARGETS[forTarget].plural} yet.`),
      );
    } catch (error) {
      fill(results, h('li', { class: 'form-error' }, error.missing ? 'Not available on this server yet.' : describeError(error)));
    }
  }

  function renderCreate() {
    const fields = {
      person: [['name', 'Name', conv?.contact.name || ''], ['email', 'Email', ''], ['phone', 'Phone', conv?.provider === 'twilio_whatsapp' ? conv.contact.handle : '']],
      lead: [['title', 'Title', conv ? `Lead: ${conv.contact.name}` : '']],
      deal: [['title', 'Title', conv ? `Deal with ${conv.contact.name}` : ''], ['value', 'Value', ''], ['currency', 'Currency', 'EUR']],
    }[target];
    const inputs = fields.map(([name, label, value]) => [name, h('input', { class: 'input', name, value, 'aria-label': label, placeholder: label, type: name === 'value' ? 'number' : name === 'email' ? 'email' : 'text' })]);
    const error = h('p', { class: 'form-error', hidden: true });
    const createForm = h(
      'form',
      { class: 'create-form' },
      h('p', { class: 'create-title' }, `Or create a new ${TARGETS[target].label.toLowerCase()} and link it`),
      inputs.map(([, input]) => input),
      error,
      h('button', { type: 'submit', class: 'btn btn-small btn-primary' }, icon('plus', 'icon-sm'), `Create and link`),
    );
    createForm.addEventListener('submit', async (event) => {
      event.preventDefault();
      const create = {};
      for (const [name, input] of inputs) {
        const value = input.value.trim();
        if (!value) continue;
        create[name] = name === 'value' ? Number(value) : value;
      }
      error.hidden = true;
      const ok = await link({ target, create }, error);
      if (ok) createForm.reset();
    });
    fill(createBox, createForm);
  }

  async function link(request, errorEl = null) {
    const forConv = conv;
    try {
      const result = await api.post(`/api/v1/conversations/${forConv.id}/links`, request);
      addLink(forConv, result);
      if (result?.link) loadRecord(result.link.target, result.link.target_id);
      form.hidden = true; // done: the new record shows in the list above
      toggle.setAttribute('aria-expanded', 'false');
      toggle.focus();
      return true;
    } catch (error) {
      if (errorEl) {
        errorEl.textContent = describeError(error);
        errorEl.hidden = false;
      } else errorToast(describeError(error));
      return false;
    }
  }

  return {
    el,
    reset(next) {
      conv = next;
      target = 'person';
      search.value = '';
      form.hidden = true;
      toggle.setAttribute('aria-expanded', 'false');
      fill(results);
      renderTabs();
    },
  };
}
