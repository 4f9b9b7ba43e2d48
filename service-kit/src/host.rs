//! Who this host is: the names that go into etcd keys and into every shipped record.

use std::net::{IpAddr, Ipv4Addr, UdpSocket};

/// The host name as the kernel reports it, or `"localhost"` when it is not valid UTF-8.
pub fn hostname() -> String {
    gethostname::gethostname()
        .into_string()
        .unwrap_or_else(|_| "localhost".to_owned())
}

/// The IPv4 address this host would use for outbound traffic, falling back to 127.0.0.1.
///
/// Connecting a UDP socket sends no packet; it only asks the kernel which source address
/// its routing table would pick, which is the address the original Go tools put in keys.
pub fn primary_ipv4() -> String {
    let probe = || -> std::io::Result<IpAddr> {
        let socket = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0))?;
        socket.connect((Ipv4Addr::new(192, 0, 2, 1), 9))?;
        Ok(socket.local_addr()?.ip())
    };
    match probe() {
        Ok(IpAddr::V4(ip)) if !ip.is_unspecified() => ip.to_string(),
        _ => Ipv4Addr::LOCALHOST.to_string(),
    }
}

/// Substitutes `{ip}` and `{hostname}` in an etcd key template.
pub fn expand_key_template(template: &str, ip: &str, hostname: &str) -> String {
    template.replace("{ip}", ip).replace("{hostname}", hostname)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_substitute_every_placeholder() {
        assert_eq!(
            expand_key_template("/logagent/{ip}/{hostname}/{ip}", "10.1.2.3", "web-1"),
            "/logagent/10.1.2.3/web-1/10.1.2.3"
        );
        assert_eq!(expand_key_template("/plain", "a", "b"), "/plain");
    }

    #[test]
    fn the_primary_ip_is_an_ipv4_address() {
        assert!(primary_ipv4().parse::<Ipv4Addr>().is_ok());
        assert!(!hostname().is_empty());
    }
}
