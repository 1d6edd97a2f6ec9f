//! Who may do what on the QC pages.
//!
//! | | qc | team_lead | supervisor | admin |
//! |---|---|---|---|---|
//! | worklist, call page, listen | ✓ | ✓ (own team) | ✓ | |
//! | score | ✓ | | ✓ | |
//! | dispute a score (own team) | | ✓ | | |
//! | settle a dispute | | | ✓ | |
//! | report | ✓ | ✓ | ✓ | ✓ |
//! | live monitoring | ✓ | ✓ (own team) | ✓ | |
//! | KPIs (`/qc/kpi`) | | ✓ (own team's agents) | ✓ | ✓ |
//! | wallboard (`/qc/wallboard`) | | ✓ | ✓ | ✓ |
//!
//! The administrator runs the system (users, configuration, the audit log)
//! and hears no citizen: recordings are for the people whose work is QC.

/// A user's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Qc,
    TeamLead,
    Supervisor,
    Admin,
}

/// Something a user may be allowed to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permission {
    Listen,
    Score,
    Dispute,
    Settle,
    Report,
    Monitor,
    /// The center's KPIs (a team lead: only the own team's agents).
    Kpi,
    /// The wallboard: the queues now and today's figures, counts only
    /// (no agent, no caller named), so a team lead sees the whole center.
    Wallboard,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Qc, Role::TeamLead, Role::Supervisor, Role::Admin];

    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == s)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Qc => "qc",
            Role::TeamLead => "team_lead",
            Role::Supervisor => "supervisor",
            Role::Admin => "admin",
        }
    }

    pub fn allows(self, p: Permission) -> bool {
        use Permission::*;
        match self {
            Role::Qc => matches!(p, Listen | Score | Report | Monitor),
            Role::TeamLead => matches!(p, Listen | Dispute | Report | Monitor | Kpi | Wallboard),
            Role::Supervisor => {
                matches!(
                    p,
                    Listen | Score | Settle | Report | Monitor | Kpi | Wallboard
                )
            }
            Role::Admin => matches!(p, Report | Kpi | Wallboard),
        }
    }

    /// Whether the role sees only its own team's agents.
    pub fn team_bound(self) -> bool {
        self == Role::TeamLead
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_admin_hears_nothing() {
        for r in Role::ALL {
            assert_eq!(Role::parse(r.as_str()), Some(r));
        }
        assert_eq!(Role::parse("root"), None);
        assert!(!Role::Admin.allows(Permission::Listen));
        assert!(Role::Admin.allows(Permission::Report));
        assert!(Role::TeamLead.allows(Permission::Dispute));
        assert!(!Role::TeamLead.allows(Permission::Score));
        assert!(!Role::Qc.allows(Permission::Settle));
        assert!(Role::Supervisor.allows(Permission::Settle));
        assert!(!Role::Qc.allows(Permission::Kpi));
        assert!(!Role::Qc.allows(Permission::Wallboard));
        for r in [Role::TeamLead, Role::Supervisor, Role::Admin] {
            assert!(r.allows(Permission::Kpi));
            assert!(r.allows(Permission::Wallboard));
        }
    }
}
