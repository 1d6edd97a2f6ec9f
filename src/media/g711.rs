//! G.711 μ-law and A-law (ITU-T G.711), one byte per 8 kHz sample.

use super::Codec;

pub fn encode(codec: Codec, pcm: &[i16], out: &mut Vec<u8>) {
    out.reserve(pcm.len());
    match codec {
        Codec::Pcmu => out.extend(pcm.iter().map(|&s| audio_codec_algorithms::encode_ulaw(s))),
        Codec::Pcma => out.extend(pcm.iter().map(|&s| audio_codec_algorithms::encode_alaw(s))),
    }
}

pub fn decode(codec: Codec, payload: &[u8], out: &mut Vec<i16>) {
    out.reserve(payload.len());
    match codec {
        Codec::Pcmu => out.extend(
            payload
                .iter()
                .map(|&b| audio_codec_algorithms::decode_ulaw(b)),
        ),
        Codec::Pcma => out.extend(
            payload
                .iter()
                .map(|&b| audio_codec_algorithms::decode_alaw(b)),
        ),
    }
}

/// The encoding of digital silence (0) in `codec`.
pub fn silence_byte(codec: Codec) -> u8 {
    match codec {
        Codec::Pcmu => 0xFF,
        Codec::Pcma => 0xD5,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn silence_round_trips() {
        for codec in [Codec::Pcmu, Codec::Pcma] {
            let mut enc = Vec::new();
            encode(codec, &[0; 4], &mut enc);
            assert!(
                enc.iter().all(|&b| b == silence_byte(codec)),
                "{codec:?} {enc:?}"
            );
            let mut dec = Vec::new();
            decode(codec, &enc, &mut dec);
            assert!(dec.iter().all(|&s| s.abs() < 16));
        }
    }

    #[test]
    fn loud_samples_keep_sign_and_size() {
        for codec in [Codec::Pcmu, Codec::Pcma] {
            let mut enc = Vec::new();
            encode(codec, &[12000, -12000], &mut enc);
            let mut dec = Vec::new();
            decode(codec, &enc, &mut dec);
            assert!(
                (dec[0] - 12000).abs() < 600 && (dec[1] + 12000).abs() < 600,
                "{dec:?}"
            );
        }
    }
}
