"""kubespawner's profile form for spawners that are not KubeSpawner.

The local twin shows exactly the Server Options page of the Kubernetes spawner: same template,
same form parsing, same profile_options, by borrowing kubespawner's own methods rather than
writing a second form.
"""

from __future__ import annotations

from kubespawner import KubeSpawner
from traitlets import HasTraits, List, Unicode, default


class KubeProfileFormMixin(HasTraits):
    profile_form_template = Unicode(
        "",
        config=True,
        help="Jinja2 template of the profile form, as KubeSpawner.profile_form_template. Empty: kubespawner's.",
    )
    additional_profile_form_template_paths = List(
        config=True,
        help="Directories searched for a form.html before kubespawner's, as in KubeSpawner.",
    )

    _render_options_form = KubeSpawner._render_options_form
    _render_options_form_dynamically = KubeSpawner._render_options_form_dynamically
    _options_from_form = KubeSpawner._options_from_form
    _validate_user_options = KubeSpawner._validate_user_options
    _get_profile = KubeSpawner._get_profile
    _get_initialized_profile_list = KubeSpawner._get_initialized_profile_list

    def profile_list(self, spawner):
        return self.dlaas_profile_list(spawner)

    @default("options_form")
    def _options_form_default(self):
        return self._render_options_form_dynamically

    @default("options_from_form")
    def _options_from_form_default(self):
        return self._options_from_form
