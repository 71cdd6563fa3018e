// Sign in and sign up. Signing up creates the account, then logs in so the session cookie is set.

import { api, ApiError, describeError } from '../api.js';
import { fill, h } from '../dom.js';

function field(label, input, error) {
  return h('label', { class: 'field' }, h('span', { class: 'field-label' }, label), input, error);
}

function fieldError(name) {
  return h('span', { class: 'field-error', dataset: { field: name }, hidden: true });
}

function showErrors(form, error, summary) {
  for (const el of form.querySelectorAll('.field-error')) {
    const msg = error instanceof ApiError ? error.fields[el.dataset.field] : null;
    el.textContent = msg || '';
    el.hidden = !msg;
  }
  summary.textContent = error ? describeError(error) : '';
  summary.hidden = !error;
}

export function mountAuth(root, { mode, notice, onSignedIn }) {
  const signup = mode === 'signup';
  const summary = h('p', { class: 'form-error', role: 'alert', hidden: true });
  const inputs = {
    company_name: h('input', { name: 'company_name', autocomplete: 'organization', required: true, maxlength: 200 }),
    name: h('input', { name: 'name', autocomplete: 'name', required: true, maxlength: 200 }),
    email: h('input', { name: 'email', type: 'email', autocomplete: 'email', required: true }),
    password: h('input', {
      name: 'password',
      type: 'password',
      autocomplete: signup ? 'new-password' : 'current-password',
      required: true,
    }),
  };
  const submit = h('button', { type: 'submit', class: 'btn btn-primary btn-block' }, signup ? 'Create account' : 'Sign in');
  const form = h(
    'form',
    { class: 'auth-form', novalidate: true },
    signup && field('Company', inputs.company_name, fieldError('company_name')),
    signup && field('Your name', inputs.name, fieldError('name')),
    field('Work email', inputs.email, fieldError('email')),
    field('Password', inputs.password, fieldError('password')),
    signup && h('p', { class: 'hint' }, 'At least 8 characters.'),
    summary,
    submit,
  );

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    if (!form.reportValidity()) return;
    submit.disabled = true;
    showErrors(form, null, summary);
    const email = inputs.email.value.trim();
    const password = inputs.password.value;
    try {
      if (signup) {
        await api.post('/api/v1/signup', {
          company_name: inputs.company_name.value.trim(),
          name: inputs.name.value.trim(),
          email,
          password,
        });
      }
      const { user } = await api.post('/api/v1/login', { email, password });
      onSignedIn(user);
    } catch (error) {
      if (error.status === 401) error.message = 'Wrong email or password.';
      showErrors(form, error, summary);
      submit.disabled = false;
    }
  });

  const card = h(
    'main',
    { class: 'auth' },
    h(
      'div',
      { class: 'auth-card' },
      h('div', { class: 'brand brand-large' }, h('span', { class: 'brand-mark', 'aria-hidden': 'true' }), 'Switchboard'),
      h('h1', { class: 'auth-title' }, signup ? 'Create your team inbox' : 'Sign in to your inbox'),
      notice && h('p', { class: 'notice' }, notice),
      form,
      h(
        'p',
        { class: 'auth-switch' },
        signup ? 'Already have an account? ' : 'New to Switchboard? ',
        h('a', { href: signup ? '#/signin' : '#/signup' }, signup ? 'Sign in' : 'Create an account'),
      ),
    ),
  );
  fill(root, card);
  (signup ? inputs.company_name : inputs.email).focus();
}
