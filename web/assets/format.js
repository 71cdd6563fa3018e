// Labels and times, in one place.

export const SECTIONS = [
  { key: 'unassigned', label: 'Unassigned' },
  { key: 'mine', label: 'Assigned to me' },
  { key: 'others', label: 'Assigned to others' },
  { key: 'closed', label: 'Closed' },
];

export const SECTION_LABEL = Object.fromEntries(SECTIONS.map((s) => [s.key, s.label]));

export const PROVIDERS = {
  api: 'Custom API',
  twilio_whatsapp: 'WhatsApp',
  messenger: 'Messenger',
};

export const NOTIFICATION_KINDS = [
  { key: 'assigned_to_me', label: 'A conversation is assigned to me' },
  { key: 'message_assigned_to_me', label: 'New message in a conversation assigned to me' },
  { key: 'message_assigned_to_others', label: 'New message in a conversation assigned to someone else' },
  { key: 'message_unassigned', label: 'New message in an unassigned conversation' },
];

export const STATUS_LABEL = {
  received: 'Received',
  queued: 'Sending…',
  sent: 'Sent',
  delivered: 'Delivered',
  read: 'Read',
  failed: 'Not delivered',
};

/** Milliseconds since the epoch, microseconds kept as a fraction (ISO strings with any precision). */
export function toTime(iso) {
  if (!iso) return 0;
  const match = /^(.*T\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:?\d\d)?$/.exec(iso);
  if (!match) return Date.parse(iso) || 0;
  const fraction = (match[2] || '').padEnd(6, '0').slice(0, 6);
  const base = Date.parse(`${match[1]}${match[3] || 'Z'}`);
  return base + Number(fraction) / 1000;
}

const timeFmt = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit' });
const dayFmt = new Intl.DateTimeFormat(undefined, { month: 'short', day: 'numeric' });
const fullFmt = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'short' });
const longDayFmt = new Intl.DateTimeFormat(undefined, { weekday: 'long', month: 'long', day: 'numeric' });

function sameDay(a, b) {
  return a.getFullYear() === b.getFullYear() && a.getMonth() === b.getMonth() && a.getDate() === b.getDate();
}

/** "14:05" today, "Nov 26" before. */
export function shortTime(iso) {
  if (!iso) return '';
  const date = new Date(toTime(iso));
  return sameDay(date, new Date()) ? timeFmt.format(date) : dayFmt.format(date);
}

export function clockTime(iso) {
  return iso ? timeFmt.format(new Date(toTime(iso))) : '';
}

export function fullTime(iso) {
  return iso ? fullFmt.format(new Date(toTime(iso))) : '';
}

export function dayLabel(iso) {
  const date = new Date(toTime(iso));
  const today = new Date();
  const yesterday = new Date(today.getTime() - 86400000);
  if (sameDay(date, today)) return 'Today';
  if (sameDay(date, yesterday)) return 'Yesterday';
  return longDayFmt.format(date);
}

export function dayKey(iso) {
  const date = new Date(toTime(iso));
  return `${date.getFullYear()}-${date.getMonth()}-${date.getDate()}`;
}

/** "just now", "5 min ago", "3 h ago", or a date. */
export function ago(iso) {
  if (!iso) return 'never';
  const seconds = (Date.now() - toTime(iso)) / 1000;
  if (seconds < 60) return 'just now';
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ago`;
  if (seconds < 86400) return `${Math.floor(seconds / 3600)} h ago`;
  return shortTime(iso);
}

export function plural(n, word) {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}
