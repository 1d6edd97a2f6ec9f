//! Interarrival jitter of an RTP stream (RFC 3550 §6.4.1, the estimator of
//! appendix A.8), sans-IO: fed each audio packet's arrival instant and RTP
//! timestamp, it keeps the running estimate J += (|D| - J) / 16, in
//! timestamp units (8 kHz for G.711). A new SSRC starts the estimate over
//! from the stream's next packet (the value so far is kept until then).

use std::time::Duration;

use tokio::time::Instant;

/// Samples per second of the timestamps (G.711).
const CLOCK_HZ: u64 = 8000;

#[derive(Debug, Clone, Copy, Default)]
pub struct Jitter {
    /// The first arrival: the origin of arrival times in timestamp units.
    base: Option<Instant>,
    /// (SSRC, the last packet's transit time), in timestamp units.
    last: Option<(u32, i64)>,
    /// The estimate, in timestamp units × 16 (A.8's integer form).
    j16: u64,
}

impl Jitter {
    pub fn new() -> Self {
        Self::default()
    }

    /// A packet of stream `ssrc` with RTP `timestamp` arrived at `now`.
    pub fn on_packet(&mut self, now: Instant, ssrc: u32, timestamp: u32) {
        let base = *self.base.get_or_insert(now);
        let arrival =
            (now.saturating_duration_since(base).as_micros() as u64 * CLOCK_HZ / 1_000_000) as i64;
        // Timestamps wrap at 2^32: transit is taken modulo 2^32 as a signed
        // difference of two transits, which is what the estimate uses.
        let transit = arrival.wrapping_sub(i64::from(timestamp));
        if let Some((s, last)) = self.last {
            if s == ssrc {
                let d = (transit - last).rem_euclid(1 << 32);
                let d = if d >= 1 << 31 { (1 << 32) - d } else { d } as u64;
                // J16 += |D| - J16/16 (A.8: jitter estimate scaled by 16).
                self.j16 = self.j16 + d - (self.j16 + 8) / 16;
            }
        }
        self.last = Some((ssrc, transit));
    }

    /// The estimate now.
    pub fn value(&self) -> Duration {
        Duration::from_micros(self.j16 / 16 * 1_000_000 / CLOCK_HZ)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_steady_stream_has_no_jitter_and_alternating_delay_converges() {
        let mut j = Jitter::new();
        let t0 = Instant::now();
        for i in 0..100u32 {
            j.on_packet(
                t0 + Duration::from_millis(20 * u64::from(i)),
                7,
                1000 + i * 160,
            );
        }
        assert_eq!(j.value(), Duration::ZERO);
        // Every other packet 10 ms late: |D| = 10 ms each packet, so the
        // estimate converges on 10 ms.
        let mut j = Jitter::new();
        for i in 0..400u32 {
            let late = if i % 2 == 1 { 10 } else { 0 };
            j.on_packet(
                t0 + Duration::from_millis(20 * u64::from(i) + late),
                7,
                i.wrapping_mul(160).wrapping_add(u32::MAX - 4000),
            );
        }
        let v = j.value().as_micros();
        assert!((9_000..=10_000).contains(&v), "{v} us");
        // A new SSRC does not count the jump between streams.
        j.on_packet(t0 + Duration::from_secs(9), 8, 5);
        assert!((9_000..=10_000).contains(&j.value().as_micros()));
    }
}
