// A popover opened by a button: Escape and clicks outside close it, focus returns to the button;
// in menus the arrow keys move between the (enabled) items.

let counter = 0;

export function popover(trigger, panel, { role = 'menu', onOpen = null } = {}) {
  counter += 1;
  panel.id = panel.id || `popover-${counter}`;
  panel.hidden = true;
  trigger.setAttribute('aria-haspopup', role === 'menu' ? 'menu' : 'dialog');
  trigger.setAttribute('aria-expanded', 'false');
  trigger.setAttribute('aria-controls', panel.id);
  if (role === 'menu') panel.setAttribute('role', 'menu');

  const items = () =>
    [...panel.querySelectorAll('[role^="menuitem"], .menu-focusable')].filter((el) => !el.disabled);

  function outside(event) {
    if (!panel.contains(event.target) && !trigger.contains(event.target)) close({ focus: false });
  }

  function keydown(event) {
    if (event.key === 'Escape') {
      event.preventDefault();
      event.stopPropagation();
      close();
    } else if (role === 'menu' && (event.key === 'ArrowDown' || event.key === 'ArrowUp')) {
      event.preventDefault();
      const list = items();
      if (!list.length) return;
      const index = list.indexOf(document.activeElement);
      const step = event.key === 'ArrowDown' ? 1 : -1;
      list[(index + step + list.length) % list.length].focus();
    }
  }

  function open() {
    onOpen?.();
    panel.hidden = false;
    trigger.setAttribute('aria-expanded', 'true');
    document.addEventListener('pointerdown', outside, true);
    panel.addEventListener('keydown', keydown);
    trigger.addEventListener('keydown', keydown);
    const first = items()[0];
    if (first) first.focus();
  }

  function close({ focus = true } = {}) {
    if (panel.hidden) return;
    panel.hidden = true;
    trigger.setAttribute('aria-expanded', 'false');
    document.removeEventListener('pointerdown', outside, true);
    panel.removeEventListener('keydown', keydown);
    trigger.removeEventListener('keydown', keydown);
    if (focus) trigger.focus();
  }

  trigger.addEventListener('click', () => (panel.hidden ? open() : close()));
  panel.addEventListener('focusout', (event) => {
    if (event.relatedTarget && !panel.contains(event.relatedTarget) && event.relatedTarget !== trigger) {
      close({ focus: false });
    }
  });
  return { open, close, isOpen: () => !panel.hidden };
}
