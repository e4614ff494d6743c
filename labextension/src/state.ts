/**
 * What the status-bar item says of the data lake's state, as the server answers it at
 * `<server>/dlaas/state` (written by the token agent after each round; never a token).
 * Pure functions: the plugin in `index.ts` renders what they return.
 */

export type Renewal = 'ok' | 'failing' | 'sign_in_expired' | 'unknown' | 'off';

export interface TokenState {
  target: string;
  state: 'valid' | 'expired' | 'missing';
  expires_at: number | null;
  last_renewal: number | null;
  last_error_at: number | null;
}

export interface LakeState {
  renewal: Renewal;
  since?: number | null;
  reason?: string;
  tokens: TokenState[];
  updated_at?: number;
  sign_in_url: string;
}

export type Level = 'ok' | 'busy' | 'warning' | 'error' | 'hidden';

export interface View {
  level: Level;
  text: string;
  title: string;
}

/** A token within this many seconds of its expiry is being renewed (the agent's margin is larger). */
export const RENEWING_WITHIN = 60;

const NAMES: { [target: string]: string } = { eos: 'EOS', rucio: 'Rucio' };

export function nameOf(target: string): string {
  return NAMES[target.toLowerCase()] ?? target;
}

/** "EOS", "EOS and Rucio", "EOS, Rucio and X". */
export function listOf(tokens: TokenState[]): string {
  const names = tokens.map(t => nameOf(t.target));
  if (names.length <= 1) {
    return names.join('');
  }
  return `${names.slice(0, -1).join(', ')} and ${names[names.length - 1]}`;
}

/** HH:MM in the browser's time zone. */
export function clock(at: number): string {
  return new Date(at * 1000).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', hour12: false });
}

/** The earliest expiry of the tokens in place, or null when none holds one. */
export function freshUntil(tokens: TokenState[]): number | null {
  const times = tokens.map(t => t.expires_at).filter((at): at is number => typeof at === 'number');
  return times.length ? Math.min(...times) : null;
}

function inPlace(tokens: TokenState[], now: number): string {
  const until = freshUntil(tokens);
  if (until === null || until <= now) {
    return 'The tokens in place have expired: EOS and Rucio refuse them until they are renewed.';
  }
  return `The tokens in place keep working until ${clock(until)}.`;
}

export function describe(state: LakeState, now: number = Date.now() / 1000): View {
  const tokens = state.tokens ?? [];
  const which = listOf(tokens) || 'data-lake';
  switch (state.renewal) {
    case 'off':
      return { level: 'hidden', text: '', title: '' };
    case 'sign_in_expired':
      return {
        level: 'error',
        text: 'Data lake: sign-in expired',
        title: `Your sign-in has expired${state.since ? ` (since ${clock(state.since)})` : ''}: ` +
          `the ${which} tokens are no longer renewed. ${inPlace(tokens, now)} ` +
          'Click to sign in again; you come back here.'
      };
    case 'failing':
      return {
        level: 'warning',
        text: `Data lake: renewal failing${state.since ? ` since ${clock(state.since)}` : ''}`,
        title: `The hub could not renew the ${which} tokens` +
          `${state.reason ? ` (${state.reason})` : ''}; it keeps trying. ${inPlace(tokens, now)}`
      };
    case 'ok': {
      const until = freshUntil(tokens);
      const due = tokens.some(t => t.state !== 'valid') || until === null || until - now <= RENEWING_WITHIN;
      if (due) {
        return {
          level: 'busy',
          text: `Data lake: renewing ${which} tokens`,
          title: `The ${which} tokens are being renewed. ${inPlace(tokens, now)}`
        };
      }
      return {
        level: 'ok',
        text: `Data lake: ${which} fresh until ${clock(until)}`,
        title: `The ${which} tokens are fresh until ${clock(until)} and renewed before then` +
          (state.updated_at ? ` (last checked at ${clock(state.updated_at)}).` : '.')
      };
    }
    default:
      return {
        level: 'busy',
        text: 'Data lake: waiting for tokens',
        title: "The token agent has not reported yet: the server's data-lake tokens arrive shortly."
      };
  }
}
