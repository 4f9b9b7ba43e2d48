//! Network bytes, packets, errors and drops per interface from `/proc/net/dev`.

use std::path::Path;

use super::{CollectError, Collector, ProcFile, matches_prefix};
use crate::sample::{NetDev, Sample};

/// Reads `<procfs>/1/net/dev`: the interfaces of PID 1's network namespace, which is the
/// host's when the host's procfs is mounted into a container (`[collect] procfs`); falls back
/// to `<procfs>/net/dev` (sysagent's own namespace) when PID 1's is not readable.
#[derive(Debug)]
pub struct NetCollector {
    file: ProcFile,
    fallback: ProcFile,
    exclude: Vec<String>,
}

impl NetCollector {
    /// `exclude` lists interface-name prefixes to skip (`lo`, `veth`…).
    pub fn new(procfs: &Path, exclude: Vec<String>) -> Self {
        NetCollector {
            file: ProcFile::new(procfs.join("1/net/dev")),
            fallback: ProcFile::new(procfs.join("net/dev")),
            exclude,
        }
    }
}

impl Collector for NetCollector {
    fn name(&self) -> &'static str {
        "net"
    }

    fn collect(&mut self, sample: &mut Sample) -> Result<(), CollectError> {
        let mut out = match self.file.read() {
            Ok(text) => parse_net_dev(text),
            Err(_) => parse_net_dev(self.fallback.read()?),
        };
        out.retain(|d| !matches_prefix(&d.name, &self.exclude));
        sample.net = out;
        Ok(())
    }
}

/// Parse `/proc/net/dev`: two header lines, then `name: 8 receive and 8 transmit columns`.
pub fn parse_net_dev(text: &str) -> Vec<NetDev> {
    let mut out = Vec::new();
    for line in text.lines() {
        let Some((name, rest)) = line.split_once(':') else {
            continue;
        };
        let mut v = [0u64; 16];
        let mut n = 0;
        for (slot, word) in v.iter_mut().zip(rest.split_ascii_whitespace()) {
            match word.parse() {
                Ok(x) => *slot = x,
                Err(_) => break,
            }
            n += 1;
        }
        if n < 16 {
            continue;
        }
        out.push(NetDev {
            name: name.trim().to_string(),
            rx_bytes: v[0],
            rx_packets: v[1],
            rx_errs: v[2],
            rx_drop: v[3],
            tx_bytes: v[8],
            tx_packets: v[9],
            tx_errs: v[10],
            tx_drop: v[11],
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const NET_DEV: &str = "Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:    3193      29    0    0    0     0          0         0     3193      29    0    0    0     0       0          0
  eth0: 176011832    7353    2    5    0     0          0         0   623420    4902    1    3    0     0       0          0
";

    #[test]
    fn parses_receive_and_transmit_columns() {
        let d = parse_net_dev(NET_DEV);
        assert_eq!(d.len(), 2);
        let eth = &d[1];
        assert_eq!(eth.name, "eth0");
        assert_eq!(
            (eth.rx_bytes, eth.rx_packets, eth.rx_errs, eth.rx_drop),
            (176011832, 7353, 2, 5)
        );
        assert_eq!(
            (eth.tx_bytes, eth.tx_packets, eth.tx_errs, eth.tx_drop),
            (623420, 4902, 1, 3)
        );
    }

    #[test]
    fn live_loopback_counts_grow_with_traffic() {
        let mut c = NetCollector::new(Path::new("/proc"), vec![]);
        let mut s = Sample::new(Default::default());
        c.collect(&mut s).unwrap();
        let before = s.net.iter().find(|d| d.name == "lo").unwrap().rx_bytes;
        let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.send_to(&[0u8; 1000], sock.local_addr().unwrap())
            .unwrap();
        let mut buf = [0u8; 1000];
        sock.recv(&mut buf).unwrap();
        c.collect(&mut s).unwrap();
        let after = s.net.iter().find(|d| d.name == "lo").unwrap().rx_bytes;
        assert!(after >= before + 1000, "lo rx_bytes {before} -> {after}");
    }
}
