// The REST client: same-origin fetch with the session cookie, errors as ApiError from the envelope.

export class ApiError extends Error {
  constructor(status, code, message, fields = null, retryAfter = null) {
    super(message);
    this.status = status;
    this.code = code;
    this.fields = fields || {};
    this.retryAfter = retryAfter;
  }

  /** The endpoint itself does not exist on this server (a feature not deployed yet). */
  get missing() {
    return this.status === 404 || this.status === 405;
  }
}

let onUnauthenticated = () => {};

/** Called when a request answers 401 (the session ended): the app goes back to sign-in. */
export function setUnauthenticatedHandler(fn) {
  onUnauthenticated = fn;
}

async function request(method, path, body) {
  const options = { method, credentials: 'same-origin', headers: { Accept: 'application/json' } };
  if (body !== undefined) {
    options.headers['Content-Type'] = 'application/json';
    options.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, options);
  } catch {
    throw new ApiError(0, 'network_error', 'Could not reach the server. Check your connection.');
  }
  const text = response.status === 204 ? '' : await response.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!response.ok) {
    const err = (data && data.error) || {};
    const error = new ApiError(
      response.status,
      err.code || `http_${response.status}`,
      err.message || `The server answered ${response.status}.`,
      err.fields,
      response.headers.get('Retry-After'),
    );
    if (response.status === 401 && !path.startsWith('/api/v1/login')) onUnauthenticated(error);
    throw error;
  }
  return data;
}

export const api = {
  get: (path) => request('GET', path),
  post: (path, body) => request('POST', path, body),
  put: (path, body) => request('PUT', path, body),
  patch: (path, body) => request('PATCH', path, body),
  del: (path) => request('DELETE', path),
};

/** Build a path with a query string, leaving out empty values. */
export function withQuery(path, params) {
  const query = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && value !== '') query.set(key, value);
  }
  const qs = query.toString();
  return qs ? `${path}?${qs}` : path;
}

/** A human message for an error, with the contract's codes in plain words. */
export function describeError(error) {
  const messages = {
    assignee_unavailable: 'That teammate is unavailable or has no access to this channel.',
    version_conflict: 'Someone changed this conversation a moment ago. Try again.',
    reply_window_closed:
      'The reply window has closed: this channel only allows replies within 24 hours of the customer’s last message.',
    email_taken: 'That email address is already in use.',
    rate_limited: 'Too many attempts. Wait a few minutes and try again.',
    forbidden: 'You are not allowed to do that.',
    payload_too_large: 'That is too large to send.',
  };
  if (error instanceof ApiError) {
    if (error.code === 'validation_error' && Object.keys(error.fields).length) {
      return Object.entries(error.fields)
        .map(([field, msg]) => `${field}: ${msg}`)
        .join('; ');
    }
    return messages[error.code] || error.message;
  }
  return 'Something went wrong.';
}
