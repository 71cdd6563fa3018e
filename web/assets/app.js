// Boot and routing. Hash routes:
//   #/inbox/{unassigned|mine|others|closed}   a section of the inbox
//   #/conversations/{id}                       one conversation (emails and CRM notes link here)
//   #/team                                     presence, availability and load of the team
//   #/settings/{notifications|integrations|users}
//   #/signin, #/signup

import {
  closeConversation,
  loadNotifications,
  loadUsers,
  markRead,
  openConversation,
  refreshAll,
  scheduleSummary,
  setSection,
} from './actions.js';
import { api, setUnauthenticatedHandler } from './api.js';
import { fill, h } from './dom.js';
import { applyFrame } from './events.js';
import { SECTION_LABEL } from './format.js';
import { Live } from './live.js';
import { emit, setUsers, state } from './store.js';
import { mountAuth } from './views/auth.js';
import { mountShell } from './views/shell.js';

const root = document.getElementById('root');
const INTENDED = 'switchboard:intended';
let live = null;

function parseHash() {
  const [name, arg] = location.hash.replace(/^#\/?/, '').split('/');
  if (name === 'conversations' && /^\d+$/.test(arg || '')) return { name: 'conversation', id: Number(arg) };
  if (name === 'inbox' && SECTION_LABEL[arg]) return { name: 'inbox', section: arg };
  if (name === 'team') return { name: 'team' };
  if (name === 'settings') return { name: 'settings', tab: arg || 'notifications' };
  if (name === 'signin' || name === 'signup') return { name };
  return { name: 'inbox', section: state.section };
}

function route() {
  const r = parseHash();
  if (!state.me) {
    showAuth(r.name === 'signup' ? 'signup' : 'signin');
    return;
  }
  if (r.name === 'signin' || r.name === 'signup') {
    location.replace('#/inbox/unassigned');
    return;
  }
  state.route = r;
  if (r.name === 'conversation') openConversation(r.id);
  else if (state.openId != null) closeConversation();
  if (r.name === 'inbox') setSection(r.section);
  emit('route');
  if (r.name === 'team' || r.name === 'settings') document.title = `${r.name === 'team' ? 'Team' : 'Settings'} · Switchboard`;
  else document.title = 'Switchboard';
}

function showAuth(mode, notice = null) {
  const hash = location.hash;
  if (hash && !/^#\/?(signin|signup)?$/.test(hash)) sessionStorage.setItem(INTENDED, hash);
  mountAuth(root, { mode, notice, onSignedIn: (user) => start(user) });
}

function start(me) {
  state.me = me;
  setUsers([me]);
  mountShell(root, { onSignOut: signOut });
  const intended = sessionStorage.getItem(INTENDED);
  sessionStorage.removeItem(INTENDED);
  if (intended) location.replace(intended);
  else if (/^#\/?(signin|signup)?$/.test(location.hash)) location.replace('#/inbox/unassigned');
  route();
  startLive();
}

function startLive() {
  // Fill the inbox at once; the first hello refetches, closing the gap before the socket was up.
  const fallback = setTimeout(() => refreshAll(), 1500);
  live = new Live({
    onFrame: applyFrame,
    onHello(data, { reconnect }) {
      if (data?.user) setUsers([data.user]);
      if (!reconnect) {
        clearTimeout(fallback);
        refreshAll();
      } else {
        // The replay brings the missed events; presence and notifications are not replayed.
        loadUsers().catch(() => {});
        loadNotifications();
        scheduleSummary(0);
      }
    },
    onResync: () => refreshAll({ resync: true }),
    onStatus(status) {
      state.connection = status;
      if (status === 'online') state.everOnline = true;
      emit('connection');
    },
    onGiveUp: () => api.get('/api/v1/me').catch(() => {}), // a 401 here signs us out
  });
  live.start();
}

async function signOut() {
  try {
    await api.post('/api/v1/logout');
  } catch {
    // signed out either way
  }
  signedOut();
}

function signedOut() {
  live?.stop();
  sessionStorage.removeItem(INTENDED);
  location.hash = '#/signin';
  location.reload(); // a clean slate: no state of the previous user survives
}

setUnauthenticatedHandler(() => {
  if (state.me) signedOut();
});

window.addEventListener('hashchange', route);
window.addEventListener('switchboard:reconnect', () => live?.reconnectNow());
document.addEventListener('visibilitychange', () => {
  const conv = state.openId != null ? state.convs.get(state.openId) : null;
  if (document.visibilityState === 'visible' && state.route.name === 'conversation' && conv?.unread_count) {
    markRead(conv.id);
  }
});

async function boot() {
  try {
    start(await api.get('/api/v1/me'));
  } catch (error) {
    if (error.status === 401) route();
    else {
      fill(
        root,
        h(
          'main',
          { class: 'auth' },
          h('div', { class: 'auth-card' }, h('h1', { class: 'auth-title' }, 'Switchboard is not reachable'), h('p', { class: 'muted' }, error.message), h('button', { type: 'button', class: 'btn btn-primary', onclick: () => location.reload() }, 'Try again')),
        ),
      );
    }
  }
}

boot();
