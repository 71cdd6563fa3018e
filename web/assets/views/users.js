// Team members (admins): everyone in the account, and a form to add a teammate.

import { api } from '../api.js';
import { fill, h, icon } from '../dom.js';
import { setUsers, on, state } from '../store.js';
import { presenceAvatar } from './assign-menu.js';
import { labelled, showFieldErrors } from './forms.js';
import { toast } from './toast.js';

export function usersSettings() {
  const list = h('ul', { class: 'user-list' });
  const name = h('input', { class: 'input', name: 'name', required: true, maxlength: 200, autocomplete: 'off' });
  const email = h('input', { class: 'input', name: 'email', type: 'email', required: true, autocomplete: 'off' });
  const password = h('input', { class: 'input', name: 'password', type: 'password', required: true, minlength: 8, autocomplete: 'new-password' });
  const role = h('select', { class: 'input', name: 'role' }, h('option', { value: 'agent' }, 'Agent'), h('option', { value: 'admin' }, 'Admin'));
  const summary = h('p', { class: 'form-error', role: 'alert', hidden: true });
  const form = h(
    'form',
    { class: 'card', novalidate: true },
    h('h2', { class: 'section-title' }, 'Add a teammate'),
    h('div', { class: 'form-grid' }, labelled('Name', name), labelled('Email', email), labelled('Initial password', password, { hint: 'At least 8 characters; share it with them privately.' }), labelled('Role', role)),
    summary,
    h('div', { class: 'card-actions' }, h('button', { type: 'submit', class: 'btn btn-primary' }, icon('plus', 'icon-sm'), 'Add teammate')),
  );
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    try {
      const { user } = await api.post('/api/v1/users', {
        name: name.value.trim(),
        email: email.value.trim(),
        password: password.value,
        role: role.value,
      });
      setUsers([user]);
      showFieldErrors(form, null, summary);
      form.reset();
      toast(`${user.name} can now sign in with ${user.email}.`);
    } catch (error) {
      showFieldErrors(form, error, summary);
    }
  });

  const el = h('section', { class: 'settings-section' }, h('h2', { class: 'section-title' }, 'Members'), list, form);
  const render = () => {
    const users = [...state.users.values()].sort((a, b) => a.name.localeCompare(b.name));
    fill(
      list,
      users.map((u) =>
        h(
          'li',
          { class: 'user-row' },
          presenceAvatar(u, 'avatar-sm'),
          h('span', { class: 'user-name' }, u.name),
          h('span', { class: 'muted' }, u.email),
          h('span', { class: 'chip' }, u.role === 'admin' ? 'Admin' : 'Agent'),
          h('span', { class: 'muted small' }, u.available ? 'Available' : 'Unavailable'),
        ),
      ),
    );
  };
  on('users', render);
  return { el, show: render };
}
