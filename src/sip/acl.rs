//! Who may place calls into the daemon: carrier trunks and PSTN gateways are
//! trusted by source address (the ACL); everyone else must authenticate
//! (agents' softphones, with the registrar) or gets 403 Forbidden.

use crate::config::Trunk;
use std::net::IpAddr;

/// The trunk list, checked on every new INVITE.
#[derive(Debug, Clone, Default)]
pub struct Acl {
    trunks: Vec<Trunk>,
}

impl Acl {
    pub fn new(trunks: Vec<Trunk>) -> Self {
        Acl { trunks }
    }

    /// The name of the trunk `ip` belongs to, if any.
    pub fn trunk_for(&self, ip: IpAddr) -> Option<&str> {
        self.trunks
            .iter()
            .find(|t| t.networks.iter().any(|n| n.contains(ip)))
            .map(|t| t.name.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::IpNet;

    #[test]
    fn trusted_and_untrusted_sources() {
        let acl = Acl::new(vec![
            Trunk {
                name: "local".into(),
                networks: vec![
                    IpNet::parse("127.0.0.1").unwrap(),
                    IpNet::parse("::1").unwrap(),
                ],
            },
            Trunk {
                name: "gateway".into(),
                networks: vec![IpNet::parse("198.51.100.0/28").unwrap()],
            },
        ]);
        assert_eq!(acl.trunk_for("127.0.0.1".parse().unwrap()), Some("local"));
        assert_eq!(acl.trunk_for("::1".parse().unwrap()), Some("local"));
        assert_eq!(
            acl.trunk_for("198.51.100.14".parse().unwrap()),
            Some("gateway")
        );
        assert_eq!(acl.trunk_for("198.51.100.16".parse().unwrap()), None);
        assert_eq!(acl.trunk_for("127.0.0.2".parse().unwrap()), None);
    }
}
