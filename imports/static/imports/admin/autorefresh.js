/* Refresh the live parts of an importhub admin page in place.
 *
 * An element with data-importhub-refresh="<ms>" and data-importhub-targets=
 * "<selector>,<selector>" makes the page fetch itself every <ms> and swap each
 * target for the fresh copy: no full reload, no flicker, scroll kept. It
 * pauses while the tab is hidden, while the operator has selected rows or an
 * action, or is typing in a target; it stops when the fresh page has no
 * marker (the run finished, the view changed).
 */
'use strict';
{
    const MARKER = '[data-importhub-refresh]';

    function busy(targets) {
        if (document.hidden) {
            return true;
        }
        if (document.querySelector('input.action-select:checked')) {
            return true;
        }
        const action = document.querySelector('#changelist-form select[name=action]');
        if (action && action.value) {
            return true;
        }
        const focused = document.activeElement;
        return targets.some(function(selector) {
            const el = document.querySelector(selector);
            return el && focused && el.contains(focused) &&
                ['INPUT', 'TEXTAREA', 'SELECT'].includes(focused.tagName);
        });
    }

    function swap(fresh, targets) {
        let changed = false;
        targets.forEach(function(selector) {
            const current = document.querySelector(selector);
            const next = fresh.querySelector(selector);
            if (current && next && current.innerHTML !== next.innerHTML) {
                current.replaceWith(document.importNode(next, true));
                changed = true;
            }
        });
        if (changed && window.Actions) {
            // The changelist's selection code binds to the rows it found.
            const rows = document.querySelectorAll('tr input.action-select');
            if (rows.length > 0) {
                window.Actions(rows);
            }
        }
    }

    function start(marker) {
        const interval = Math.max(1000, Number(marker.dataset.importhubRefresh) || 3000);
        const targets = (marker.dataset.importhubTargets || '').split(',')
            .map(function(s) { return s.trim(); })
            .filter(Boolean);
        let inFlight = false;

        const timer = window.setInterval(function() {
            if (inFlight || busy(targets)) {
                return;
            }
            inFlight = true;
            fetch(window.location.href, {
                credentials: 'same-origin',
                headers: {'X-Requested-With': 'importhub-autorefresh'}
            }).then(function(response) {
                if (!response.ok) {
                    throw new Error(response.status);
                }
                return response.text();
            }).then(function(html) {
                const fresh = new DOMParser().parseFromString(html, 'text/html');
                swap(fresh, targets);
                if (!fresh.querySelector(MARKER)) {
                    window.clearInterval(timer);
                    const note = document.querySelector('.importhub-live-note');
                    if (note) {
                        note.remove();
                    }
                }
                document.dispatchEvent(new CustomEvent('importhub:refreshed'));
            }).catch(function() {
                // A failed fetch (a restart, a network blip) is retried on
                // the next tick.
            }).finally(function() {
                inFlight = false;
            });
        }, interval);
    }

    function ready(fn) {
        if (document.readyState !== 'loading') {
            fn();
        } else {
            document.addEventListener('DOMContentLoaded', fn);
        }
    }

    ready(function() {
        const marker = document.querySelector(MARKER);
        if (marker) {
            start(marker);
        }
    });
}
