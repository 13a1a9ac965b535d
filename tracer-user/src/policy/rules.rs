//! The rule keys of `[policy]`, `[[group]]` and `[[device]]`, as written in the file.

use serde::Deserialize;
use toml::Spanned;
use tracer_common::policy::Action;

/// An action as written in the configuration or on the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum ActionName {
    /// Approved: counted, nothing else.
    Allow,
    /// Counted, and an alert is raised.
    Alert,
    /// Dropped in the kernel, and an alert says so.
    Block,
}

impl From<ActionName> for Action {
    fn from(name: ActionName) -> Self {
        match name {
            ActionName::Allow => Action::Allow,
            ActionName::Alert => Action::Alert,
            ActionName::Block => Action::Block,
        }
    }
}

/// Adds the rule keys (`allow`, `alert`, `block`, `otherwise`, `unknown`) to a configuration
/// section struct, and a `rules()` method returning them.
macro_rules! with_rules {
    (
        $(#[$meta:meta])*
        pub struct $name:ident { $($(#[$field_meta:meta])* pub $field:ident: $ty:ty,)* }
    ) => {
        $(#[$meta])*
        pub struct $name {
            $($(#[$field_meta])* pub $field: $ty,)*
            /// Approved regions.
            #[serde(default)]
            pub allow: Vec<::toml::Spanned<String>>,
            /// Regions that alert even where a wider region is approved.
            #[serde(default)]
            pub alert: Vec<::toml::Spanned<String>>,
            /// Regions dropped in the kernel.
            #[serde(default)]
            pub block: Vec<::toml::Spanned<String>>,
            /// The action for regions listed nowhere.
            pub otherwise: Option<::toml::Spanned<$crate::policy::ActionName>>,
            /// The action for addresses with no country.
            pub unknown: Option<::toml::Spanned<$crate::policy::ActionName>>,
        }

        impl $name {
            /// This section's rule keys.
            pub fn rules(&self) -> $crate::policy::Rules {
                $crate::policy::Rules {
                    allow: self.allow.clone(),
                    alert: self.alert.clone(),
                    block: self.block.clone(),
                    otherwise: self.otherwise.clone(),
                    unknown: self.unknown.clone(),
                }
            }
        }
    };
}
pub(crate) use with_rules;

with_rules! {
    /// `[policy]`: the rules every device starts from.
    #[derive(Clone, Debug, Default, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    pub struct Rules {}
}

impl Rules {
    /// One line describing the rules, for `check-config` and logs.
    pub fn summary(&self) -> String {
        let list = |name: &str, items: &[Spanned<String>]| {
            (!items.is_empty()).then(|| {
                let items: Vec<&str> = items.iter().map(|s| s.get_ref().as_str()).collect();
                format!("{name} [{}]", items.join(", "))
            })
        };
        let action = |name: &str, a: &Option<Spanned<ActionName>>| {
            a.as_ref().map(|a| format!("{name} {}", Action::from(*a.get_ref()).as_str()))
        };
        let parts: Vec<String> = [
            list("allow", &self.allow),
            list("alert", &self.alert),
            list("block", &self.block),
            action("otherwise", &self.otherwise),
            action("unknown", &self.unknown),
        ]
        .into_iter()
        .flatten()
        .collect();
        if parts.is_empty() { "allow everything".to_owned() } else { parts.join(", ") }
    }

    /// Applies the command-line shortcuts `--allow`, `--block` and `--unknown-action`, which
    /// replace the corresponding keys of `[policy]`.
    pub fn apply_shortcuts(
        &mut self,
        allow: Option<&[String]>,
        block: Option<&[String]>,
        unknown: Option<ActionName>,
    ) {
        let spanned = |items: &[String]| {
            items
                .iter()
                .filter(|s| !s.trim().is_empty())
                .map(|s| Spanned::new(crate::policy::COMMAND_LINE, s.trim().to_owned()))
                .collect()
        };
        if let Some(allow) = allow {
            self.allow = spanned(allow);
        }
        if let Some(block) = block {
            self.block = spanned(block);
        }
        if let Some(unknown) = unknown {
            self.unknown = Some(Spanned::new(crate::policy::COMMAND_LINE, unknown));
        }
    }
}
