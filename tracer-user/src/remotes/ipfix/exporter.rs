//! Sending the messages over UDP.

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};

use tokio::net::UdpSocket;

use super::{Encoder, FlowRecord};

/// An IPFIX Exporting Process over UDP: an [`Encoder`] and a socket connected to one collector
/// (one Transport Session, so one sequence of sequence numbers).
#[derive(Debug)]
pub struct Exporter {
    socket: UdpSocket,
    encoder: Encoder,
}

impl Exporter {
    /// A socket bound to an ephemeral port of `collector`'s address family and connected to
    /// it, exporting for `observation_domain`.
    pub async fn connect(collector: SocketAddr, observation_domain: u32) -> io::Result<Self> {
        let local: SocketAddr = match collector {
            SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
            SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
        };
        let socket = UdpSocket::bind(local).await?;
        socket.connect(collector).await?;
        Ok(Exporter { socket, encoder: Encoder::new(observation_domain) })
    }

    /// The collector's address.
    pub fn collector(&self) -> io::Result<SocketAddr> {
        self.socket.peer_addr()
    }

    /// The encoder, for its sequence number.
    pub fn encoder(&self) -> &Encoder {
        &self.encoder
    }

    /// Encodes one export with [`Encoder::encode`] and sends its messages, one datagram each;
    /// returns how many were sent.
    ///
    /// An error (typically `ECONNREFUSED` after an ICMP port unreachable while no collector
    /// listens) stops this export only: the records of unsent messages are lost, the sequence
    /// numbers show the gap to the collector, and the next export may go through.
    pub async fn export(
        &mut self,
        export_time_secs: u32,
        records: &[FlowRecord],
    ) -> io::Result<usize> {
        let messages = self.encoder.encode(export_time_secs, records);
        for message in &messages {
            self.socket.send(message).await?;
        }
        Ok(messages.len())
    }
}
