// Messaging integrations: the installed ones with their webhook URL and who shares them; admins
// install new ones (api / twilio_whatsapp / messenger), change sharing, and remove them.

import { loadIntegrations } from '../actions.js';
import { api, describeError } from '../api.js';
import { fill, h, icon } from '../dom.js';
import { fullTime, PROVIDERS } from '../format.js';
import { on, state, userName } from '../store.js';
import { labelled, randomSecret, showFieldErrors } from './forms.js';
import { confirmDialog, errorToast, toast } from './toast.js';

const CONFIG = {
  api: [
    { key: 'webhook_secret', label: 'Webhook secret', secret: true, required: true, generate: true, hint: 'Signs inbound messages and our replies (HMAC-SHA256).' },
    { key: 'callback_url', label: 'Callback URL (optional)', type: 'url', placeholder: 'https://crm.example.com/replies', hint: 'Replies are POSTed here. Leave empty to read replies over the API.' },
  ],
  twilio_whatsapp: [
    { key: 'account_sid', label: 'Account SID', required: true, placeholder: 'AC…' },
    { key: 'auth_token', label: 'Auth token', secret: true, required: true },
    { key: 'from_number', label: 'WhatsApp sender number', required: true, placeholder: '+14155238886', hint: 'E.164, without “whatsapp:”.' },
  ],
  messenger: [
    { key: 'page_id', label: 'Page ID', required: true },
    { key: 'page_access_token', label: 'Page access token', secret: true, required: true },
    { key: 'app_secret', label: 'App secret', secret: true, required: true },
    { key: 'verify_token', label: 'Verify token', secret: true, required: true, generate: true, hint: 'Any string; enter the same in Meta’s webhook settings.' },
  ],
};

const SETUP = {
  api: 'POST each customer message, signed with X-Signature-256, to this URL.',
  twilio_whatsapp: 'In Twilio’s console, set the WhatsApp sender’s “A message comes in” webhook to this URL (HTTP POST).',
  messenger: 'In your Meta app’s Messenger settings, set the callback URL to this URL with your verify token, and subscribe the page to messages, message_deliveries and message_reads.',
};

function userChecklist(selected, { exclude = null } = {}) {
  const users = [...state.users.values()].filter((u) => u.id !== exclude);
  return h(
    'fieldset',
    { class: 'checklist' },
    h('legend', { class: 'field-label' }, 'Shared with'),
    users.length
      ? users.map((u) =>
          h('label', { class: 'check' }, h('input', { type: 'checkbox', name: 'shared_with', value: String(u.id), checked: selected.has(u.id) }), u.name, h('span', { class: 'muted small' }, u.email)),
        )
      : h('p', { class: 'muted' }, 'No other team members yet.'),
    h('span', { class: 'field-error', dataset: { field: 'shared_with' }, hidden: true }),
  );
}

function checkedIds(root) {
  return [...root.querySelectorAll('input[name="shared_with"]:checked')].map((i) => Number(i.value));
}

function webhookField(url) {
  const input = h('input', { class: 'input mono', readonly: true, value: url, 'aria-label': 'Webhook URL' });
  const copy = h('button', { type: 'button', class: 'btn btn-small' }, 'Copy');
  copy.addEventListener('click', async () => {
    try {
      await navigator.clipboard.writeText(url);
      toast('Webhook URL copied.');
    } catch {
      input.select();
    }
  });
  return h('div', { class: 'copy-field' }, input, copy);
}

export function integrationsSettings() {
  const list = h('div', { class: 'integration-list' });
  const install = installForm();
  const el = h(
    'section',
    { class: 'settings-section' },
    h('h2', { class: 'section-title' }, 'Installed channels'),
    list,
    install.el,
  );

  function render() {
    const admin = state.me?.role === 'admin';
    install.el.hidden = !admin;
    const items = [...state.integrations.values()].sort((a, b) => a.id - b.id);
    fill(
      list,
      items.length
        ? items.map((i) => integrationCard(i, admin))
        : h('p', { class: 'muted' }, admin ? 'No channels yet. Install one below to start receiving messages.' : 'No channels are shared with you yet.'),
    );
  }
  on(['integrations', 'users', 'me'], render);
  return {
    el,
    show() {
      render();
      install.refresh();
      loadIntegrations().catch(() => {});
    },
  };
}

function integrationCard(integration, admin) {
  const shared = (integration.shared_with || []).map(userName);
  const editBox = h('div', { class: 'edit-sharing', hidden: true });
  const card = h(
    'article',
    { class: 'card integration-card', dataset: { id: String(integration.id) } },
    h(
      'header',
      { class: 'integration-head' },
      h('h3', { class: 'card-title' }, integration.name),
      h('span', { class: `chip chip-${integration.provider}` }, PROVIDERS[integration.provider] || integration.provider),
    ),
    h('p', { class: 'muted small' }, `Installed by ${userName(integration.installed_by)} · ${fullTime(integration.created_at)}`),
    h('p', {}, h('span', { class: 'field-label' }, 'Shared with: '), shared.length ? shared.join(', ') : 'only the installer'),
    h('div', { class: 'field' }, h('span', { class: 'field-label' }, 'Webhook URL'), webhookField(integration.webhook_url), h('span', { class: 'hint' }, SETUP[integration.provider] || '')),
    admin &&
      h(
        'div',
        { class: 'card-actions' },
        h('button', { type: 'button', class: 'btn btn-small', onclick: () => toggleEdit() }, 'Change sharing'),
        h('button', { type: 'button', class: 'btn btn-small btn-danger-quiet', onclick: () => remove() }, 'Remove'),
      ),
    editBox,
  );

  function toggleEdit() {
    if (!editBox.hidden) {
      editBox.hidden = true;
      return;
    }
    const checklist = userChecklist(new Set(integration.shared_with || []), { exclude: integration.installed_by });
    const error = h('p', { class: 'form-error', hidden: true });
    const form = h('form', {}, checklist, h('p', { class: 'hint' }, `${userName(integration.installed_by)} (the installer) always has access.`), error, h('button', { type: 'submit', class: 'btn btn-primary btn-small' }, 'Save sharing'));
    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      try {
        await api.patch(`/api/v1/integrations/${integration.id}`, { shared_with: checkedIds(form) });
        await loadIntegrations();
        toast('Sharing saved.');
      } catch (err) {
        showFieldErrors(form, err, error);
      }
    });
    fill(editBox, form);
    editBox.hidden = false;
    checklist.querySelector('input')?.focus();
  }

  async function remove() {
    const ok = await confirmDialog({
      title: `Remove ${integration.name}?`,
      body: 'All its conversations and their history are deleted for everyone. This cannot be undone.',
      confirm: 'Remove channel',
      danger: true,
    });
    if (!ok) return;
    try {
      await api.del(`/api/v1/integrations/${integration.id}`);
      await loadIntegrations();
      toast('Channel removed.');
    } catch (error) {
      errorToast(describeError(error));
    }
  }
  return card;
}

function installForm() {
  const provider = h(
    'select',
    { class: 'input', name: 'provider' },
    Object.entries(PROVIDERS).map(([key, label]) => h('option', { value: key }, label)),
  );
  const name = h('input', { class: 'input', name: 'name', required: true, maxlength: 200, placeholder: 'e.g. Website chat' });
  const configBox = h('div', { class: 'config-fields' });
  const sharingBox = h('div');
  const summary = h('p', { class: 'form-error', role: 'alert', hidden: true });
  const done = h('div', { class: 'install-done', hidden: true });
  const submit = h('button', { type: 'submit', class: 'btn btn-primary' }, icon('plus', 'icon-sm'), 'Install');
  const form = h(
    'form',
    { class: 'card install-form', novalidate: true },
    h('h2', { class: 'section-title' }, 'Install a messaging integration'),
    h('div', { class: 'form-grid' }, labelled('Provider', provider), labelled('Name', name)),
    configBox,
    sharingBox,
    summary,
    h('div', { class: 'card-actions' }, submit),
    done,
  );
  let inputs = [];

  function renderConfig() {
    inputs = CONFIG[provider.value].map((f) => {
      const input = h('input', {
        class: 'input',
        name: `config.${f.key}`,
        type: f.secret ? 'password' : f.type || 'text',
        required: f.required,
        placeholder: f.placeholder || null,
        autocomplete: 'off',
      });
      const generate = f.generate && h('button', { type: 'button', class: 'btn btn-small', onclick: () => { input.value = randomSecret(); input.type = 'text'; } }, 'Generate');
      const wrapped = generate ? h('div', { class: 'copy-field' }, input, generate) : input;
      const field = labelled(f.label, wrapped, { name: `config.${f.key}`, hint: f.hint, control: input });
      return { key: f.key, input, field };
    });
    fill(configBox, h('div', { class: 'form-grid' }, inputs.map((i) => i.field)));
  }
  provider.addEventListener('change', renderConfig);

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const config = {};
    for (const { key, input } of inputs) if (input.value.trim()) config[key] = input.value.trim();
    submit.disabled = true;
    try {
      const integration = await api.post('/api/v1/integrations', {
        provider: provider.value,
        name: name.value.trim(),
        config,
        shared_with: checkedIds(sharingBox),
      });
      showFieldErrors(form, null, summary);
      form.reset();
      renderConfig();
      fill(
        done,
        h('h3', { class: 'card-title' }, icon('check', 'icon-sm'), `${integration.name} is installed`),
        h('p', {}, SETUP[integration.provider] || ''),
        webhookField(integration.webhook_url),
      );
      done.hidden = false;
      await loadIntegrations();
    } catch (error) {
      showFieldErrors(form, error, summary);
    } finally {
      submit.disabled = false;
    }
  });

  renderConfig();
  return {
    el: form,
    refresh() {
      fill(sharingBox, userChecklist(new Set(checkedIds(sharingBox)), { exclude: state.me?.id }), h('p', { class: 'hint' }, 'You will always have access to channels you install.'));
    },
  };
}
