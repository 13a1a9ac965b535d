//! Metrics of name learning (bounded: by result, never by name).

use std::sync::{Arc, atomic::Ordering};

use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeMetric as _},
    metrics::{MetricType, counter::ConstCounter, gauge::ConstGauge},
};

use super::{DNS_RESULTS, NameBook, TLS_RESULTS};

/// Reads the name book at scrape time.
#[derive(Debug)]
pub struct NameCollector {
    /// The book.
    pub book: Arc<NameBook>,
}

impl Collector for NameCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let stats = &self.book.stats;
        for (name, help, labels, values) in [
            (
                "dns_answers",
                "DNS messages travelling to devices, by result: answer (addresses named), no_address, not_response, malformed, truncated (longer than the capture)",
                &DNS_RESULTS,
                &stats.dns,
            ),
            (
                "tls_hellos",
                "TLS segments from devices to ports 443/853, by result: sni (a server name), no_sni, partial (waiting for its second segment), not_hello, dropped_partial",
                &TLS_RESULTS,
                &stats.tls,
            ),
        ] {
            let mut metric = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
            for (label, value) in labels.iter().zip(values.iter()) {
                ConstCounter::new(value.load(Ordering::Relaxed))
                    .encode(metric.encode_family(&[("result", *label)])?)?;
            }
        }
        let metric = encoder.encode_descriptor(
            "names_entries",
            "(device, address) entries with names held",
            None,
            MetricType::Gauge,
        )?;
        ConstGauge::new(self.book.len() as i64).encode(metric)?;
        let metric = encoder.encode_descriptor(
            "names_capacity",
            "(device, address) entries the name book holds at most (--dns-names)",
            None,
            MetricType::Gauge,
        )?;
        ConstGauge::new(self.book.capacity() as i64).encode(metric)?;
        let metric = encoder.encode_descriptor(
            "names_evictions",
            "(device, address) name entries evicted to make room (least recently used first)",
            None,
            MetricType::Counter,
        )?;
        ConstCounter::new(stats.evictions.load(Ordering::Relaxed)).encode(metric)?;
        let metric = encoder.encode_descriptor(
            "captures_malformed",
            "Captures from the kernel too short for their header or of an unknown kind",
            None,
            MetricType::Counter,
        )?;
        ConstCounter::new(stats.bad_captures.load(Ordering::Relaxed)).encode(metric)
    }
}
