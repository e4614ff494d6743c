/**
 * The data lake's state in JupyterLab's status bar, and a notification with the way back when the
 * sign-in has expired. Polls `<server>/dlaas/state` (the dlaas_hub.server.labstate server extension).
 */

import { JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { Notification } from '@jupyterlab/apputils';
import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';
import { IStatusBar } from '@jupyterlab/statusbar';
import { Widget } from '@lumino/widgets';

import { clock, describe, freshUntil, LakeState, listOf } from './state';

const PLUGIN_ID = '@dlaas-hub/datalake-status:plugin';
/** Often enough to show a renewal or an expiry within the minute, cheap for the server. */
const POLL_SECONDS = 20;

class DataLakeStatus extends Widget {
  constructor() {
    super();
    this.id = 'dlaas-datalake-status';
    this.addClass('dlaas-DataLakeStatus');
    this.node.setAttribute('role', 'status');
    this.node.addEventListener('click', () => {
      if (this._signInUrl) {
        window.location.assign(this._signInUrl);
      }
    });
  }

  show_(state: LakeState): void {
    const view = describe(state);
    this.node.textContent = view.text;
    this.node.title = view.title;
    this.node.dataset.level = view.level;
    this.node.dataset.renewal = state.renewal;
    this._signInUrl = state.renewal === 'sign_in_expired' ? state.sign_in_url : null;
    this.node.classList.toggle('dlaas-mod-clickable', this._signInUrl !== null);
    this.setHidden(view.level === 'hidden');
  }

  unreachable(): void {
    this.node.textContent = 'Data lake: state unknown';
    this.node.title = 'The server did not answer the data-lake state; retrying.';
    this.node.dataset.level = 'warning';
  }

  private _signInUrl: string | null = null;
}

/** One notification per expired sign-in, gone once the tokens are renewed again. */
class SignInNotice {
  update(state: LakeState): void {
    if (state.renewal === 'sign_in_expired') {
      if (this._id === null) {
        const which = listOf(state.tokens) || 'data-lake';
        const until = freshUntil(state.tokens);
        const left = until && until > Date.now() / 1000 ? ` (those in place work until ${clock(until)})` : '';
        // Short: JupyterLab cuts a notification's text at 140 characters; the button says the rest.
        this._id = Notification.warning(
          `Your sign-in has expired: ${which} tokens are no longer renewed${left}.`,
          {
            autoClose: false,
            actions: [{
              label: 'Sign in again',
              caption: 'Sign in to the hub again and come back here',
              displayType: 'accent',
              callback: () => window.location.assign(state.sign_in_url)
            }]
          }
        );
      }
      return;
    }
    if (this._id !== null && state.renewal === 'ok') {
      Notification.dismiss(this._id);
      this._id = null;
      const until = freshUntil(state.tokens);
      Notification.success(
        `Signed in again: your ${listOf(state.tokens) || 'data-lake'} tokens are renewed` +
          (until ? ` (fresh until ${clock(until)}).` : '.'),
        { autoClose: 8000 }
      );
    }
  }

  private _id: string | null = null;
}

async function fetchState(settings: ServerConnection.ISettings): Promise<LakeState> {
  const url = URLExt.join(settings.baseUrl, 'dlaas', 'state');
  const response = await ServerConnection.makeRequest(url, { cache: 'no-store' }, settings);
  if (!response.ok) {
    throw new Error(`${url}: ${response.status}`);
  }
  return (await response.json()) as LakeState;
}

const plugin: JupyterFrontEndPlugin<void> = {
  id: PLUGIN_ID,
  description: "The data lake's state for this server in the status bar: tokens fresh, renewing, failing, sign-in expired.",
  autoStart: true,
  requires: [IStatusBar],
  activate: (app: JupyterFrontEnd, statusBar: IStatusBar) => {
    const settings = ServerConnection.makeSettings();
    const item = new DataLakeStatus();
    const notice = new SignInNotice();
    statusBar.registerStatusItem(PLUGIN_ID, { item, align: 'left', rank: 100 });
    const poll = async () => {
      try {
        const state = await fetchState(settings);
        item.show_(state);
        notice.update(state);
      } catch (reason) {
        console.warn('dlaas-hub: the data lake state could not be read', reason);
        item.unreachable();
      }
    };
    void app.restored.then(poll);
    window.setInterval(poll, POLL_SECONDS * 1000);
  }
};

export default plugin;
