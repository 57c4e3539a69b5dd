//! SDP text the relay reads or adjusts before str0m sees it: what it tells a client about an
//! offer it refuses (where a malformed offer stopped parsing, never the parser's internal
//! position, a memory address; which codecs an offer's audio/video sections name), and an offer
//! to receive simulcast cut down to the layers the stream has.

use str0m::format::Codec;

/// The message for an offer str0m could not parse. `error` is str0m's text, e.g.
/// `SDP parse: Parse error at PointerOffset(0x7f…)\nUnexpected `h`\nExpected `v`\n…`, where the
/// pointer is an address inside `offer` (str0m parses the caller's string in place): it becomes
/// a line number and that line's text. Anything else that looks like an address is dropped.
pub(crate) fn parse_error(offer: &str, error: &str) -> String {
    let error = error.strip_prefix("SDP parse: ").unwrap_or(error);
    let mut lines = error.lines().map(str::trim).filter(|l| !l.is_empty());
    let mut place = String::new();
    let mut details = Vec::new();
    if let Some(first) = lines.next() {
        match first.strip_prefix("Parse error at ") {
            Some(position) => place = line_at(offer, position).unwrap_or_default(),
            None => details.push(first),
        }
    }
    details.extend(lines);
    let details: Vec<String> = details.into_iter().map(|d| without_addresses(&visible(d))).collect();
    let mut message = format!("the SDP offer could not be parsed{place}");
    if !details.is_empty() {
        message.push_str(": ");
        message.push_str(&details.join("; "));
    }
    message
}

/// " at line N (`text`)" for a parser position `PointerOffset(0x…)` that points into `offer`.
fn line_at(offer: &str, position: &str) -> Option<String> {
    let hex = position.trim().strip_prefix("PointerOffset(0x")?.strip_suffix(')')?;
    let address = usize::from_str_radix(hex, 16).ok()?;
    let offset = address.checked_sub(offer.as_ptr() as usize).filter(|&o| o <= offer.len())?;
    let (before, after) = (offer.get(..offset)?, offer.get(offset..)?);
    if after.is_empty() {
        return Some(" at the end of the offer".into());
    }
    let number = before.matches('\n').count() + 1;
    let start = before.rfind('\n').map_or(0, |i| i + 1);
    let text = offer[start..].lines().next().unwrap_or("").trim_end();
    let mut shown = visible(&text.chars().take(60).collect::<String>());
    if text.chars().count() > 60 {
        shown.push('…');
    }
    Some(format!(" at line {number} (`{shown}`)"))
}

/// `text` with control characters (a stray `\r` the parser complains about) written as escapes.
fn visible(text: &str) -> String {
    text.chars().map(|c| if c.is_control() { c.escape_default().to_string() } else { c.to_string() }).collect()
}

/// `text` with every word that looks like a memory address (`0x` and hex digits, maybe inside
/// parentheses) removed.
pub(crate) fn without_addresses(text: &str) -> String {
    text.split(' ')
        .filter(|word| {
            let word = word.trim_matches(|c: char| !c.is_ascii_alphanumeric());
            !(word.starts_with("0x") && word.len() > 2 && word[2..].chars().all(|c| c.is_ascii_hexdigit()))
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The media codecs an offer's enabled audio and video sections name (rtpmap names, and
/// the static payload types given without one), each once, in order, as [`codec_name`] spells
/// them. Helpers that carry no media of their own (RTX, RED, FEC, comfort noise, DTMF) are left out.
pub(crate) fn offered_codecs(offer: &str) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    let mut add = |name: &str| {
        let helper = ["rtx", "red", "ulpfec", "flexfec-03", "cn", "telephone-event"];
        let name = codec_name(name);
        if !helper.contains(&name.to_ascii_lowercase().as_str()) && !names.contains(&name) {
            names.push(name);
        }
    };
    for section in offer.split("\nm=").skip(1) {
        let mut words = section.lines().next().unwrap_or("").split_whitespace();
        let kind = words.next().unwrap_or("");
        let port = words.next().unwrap_or("0");
        if !matches!(kind, "audio" | "video") || port == "0" {
            continue;
        }
        let rtpmaps: Vec<(&str, &str)> = section
            .lines()
            .filter_map(|l| l.trim_end().strip_prefix("a=rtpmap:"))
            .filter_map(|m| m.split_once(' '))
            .map(|(pt, encoding)| (pt, encoding.split('/').next().unwrap_or(encoding)))
            .collect();
        // After the port: the protocol, then the payload types.
        for pt in words.skip(1) {
            match rtpmaps.iter().find(|(p, _)| *p == pt) {
                Some((_, encoding)) => add(encoding),
                None => {
                    if let Some(name) = static_payload_type(pt) {
                        add(name);
                    }
                }
            }
        }
    }
    names
}

/// An offer to *receive* simulcast (`a=simulcast:recv`, as a cascade edge pulling every layer
/// of a stream sends) cut down to its first `layers` rids, at least one: the answer then names
/// exactly the layers the stream has, each sent on its own SSRC. Returns the offer and whether
/// any of its m-lines asks to receive simulcast; an offer that does not is returned unchanged.
pub(crate) fn fit_simulcast_recv(offer: &str, layers: usize) -> (String, bool) {
    let keep = layers.max(1);
    let mut fitted = String::with_capacity(offer.len());
    let mut asked = false;
    // Per m-section: a section's lines up to the next `m=` line.
    let mut sections: Vec<Vec<&str>> = vec![Vec::new()];
    for line in offer.split_inclusive('\n') {
        if line.starts_with("m=") {
            sections.push(Vec::new());
        }
        if let Some(section) = sections.last_mut() {
            section.push(line);
        }
    }
    for section in sections {
        let simulcast = section.iter().find_map(|l| l.trim_end().strip_prefix("a=simulcast:"));
        let Some((recv, rewritten)) = simulcast.and_then(|value| cut_simulcast_recv(value, keep)) else {
            section.iter().for_each(|l| fitted.push_str(l));
            continue;
        };
        asked = true;
        for line in section {
            let text = line.trim_end();
            let ending = &line[text.len()..];
            if text.starts_with("a=simulcast:") {
                fitted.push_str("a=simulcast:");
                fitted.push_str(&rewritten);
                fitted.push_str(ending);
                continue;
            }
            // `a=rid:<id> recv …` of a rid cut from the list goes too.
            let cut_rid = text.strip_prefix("a=rid:").and_then(|rid| rid.split_once(' ')).is_some_and(|(id, rest)| {
                rest.split_whitespace().next() == Some("recv") && !recv.iter().any(|kept| kept == id)
            });
            if !cut_rid {
                fitted.push_str(line);
            }
        }
    }
    (fitted, asked)
}

/// An `a=simulcast:` value (`recv a;b;c`, maybe with a `send` part) with its `recv` list cut to
/// `keep` entries; the rids kept and the new value. None without a `recv` list.
fn cut_simulcast_recv(value: &str, keep: usize) -> Option<(Vec<String>, String)> {
    let words: Vec<&str> = value.split_whitespace().collect();
    let at = words.iter().position(|w| *w == "recv")?;
    let list = words.get(at + 1)?;
    let entries: Vec<&str> = list.split(';').filter(|e| !e.is_empty()).take(keep).collect();
    // An entry may list alternatives (`a,b`) and be paused (`~a`): each of its rids is kept.
    let kept: Vec<String> =
        entries.iter().flat_map(|e| e.split(',')).map(|rid| rid.trim_start_matches('~').to_owned()).collect();
    let mut rewritten: Vec<String> = words.iter().map(|w| (*w).to_owned()).collect();
    rewritten[at + 1] = entries.join(";");
    Some((kept, rewritten.join(" ")))
}

/// RFC 3551's static payload types that browsers and phones still offer.
fn static_payload_type(pt: &str) -> Option<&'static str> {
    Some(match pt {
        "0" => "PCMU",
        "3" => "GSM",
        "8" => "PCMA",
        "9" => "G722",
        "13" => "CN",
        "18" => "G729",
        "34" => "H263",
        _ => return None,
    })
}

/// A codec's name as people write it: `Opus`, `VP8`, `H.264`, `PCMU`.
pub(crate) fn codec_name(encoding: &str) -> String {
    match encoding.to_ascii_lowercase().as_str() {
        "opus" => "Opus".into(),
        "h264" => "H.264".into(),
        "h265" => "H.265".into(),
        "h266" => "H.266".into(),
        other => other.to_ascii_uppercase(),
    }
}

/// The names of `codecs`, each once, in order, joined with ", ".
pub(crate) fn codec_list(codecs: impl IntoIterator<Item = Codec>) -> String {
    let mut names: Vec<String> = Vec::new();
    for codec in codecs {
        let name = codec_name(&codec.to_string());
        if !names.contains(&name) {
            names.push(name);
        }
    }
    names.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use str0m::change::SdpOffer;

    const PULL_OFFER: &str = "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n\
        m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\na=recvonly\r\n\
        m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:1\r\na=recvonly\r\n\
        a=rid:l0 recv\r\na=rid:l1 recv\r\na=rid:l2 recv\r\na=rid:l3 recv\r\n\
        a=simulcast:recv l0;l1;l2;l3\r\na=rtcp-mux\r\n";

    #[test]
    fn a_simulcast_receive_offer_is_cut_to_the_layers_the_stream_has() {
        let (fitted, asked) = fit_simulcast_recv(PULL_OFFER, 3);
        assert!(asked);
        assert!(fitted.contains("a=simulcast:recv l0;l1;l2\r\n"), "{fitted}");
        assert!(fitted.contains("a=rid:l2 recv\r\n") && !fitted.contains("a=rid:l3"), "{fitted}");
        assert!(fitted.contains("a=mid:0\r\na=recvonly\r\nm=video") && fitted.ends_with("a=rtcp-mux\r\n"));

        // A stream of one encoding is sent on the first rid.
        let (fitted, _) = fit_simulcast_recv(PULL_OFFER, 0);
        assert!(fitted.contains("a=simulcast:recv l0\r\n") && !fitted.contains("a=rid:l1"), "{fitted}");
        // More layers than offered: the offer as it is.
        assert_eq!(fit_simulcast_recv(PULL_OFFER, 4).0, PULL_OFFER);
    }

    #[test]
    fn offers_without_simulcast_receive_are_left_alone() {
        let plain = PULL_OFFER.replace("a=simulcast:recv l0;l1;l2;l3\r\n", "");
        assert_eq!(fit_simulcast_recv(&plain, 1), (plain.clone(), false));
        // A publisher's send list is not touched.
        let send = PULL_OFFER.replace(" recv", " send").replace(":recv", ":send");
        assert_eq!(fit_simulcast_recv(&send, 1), (send.clone(), false));
        // Odd input changes nothing and panics nowhere.
        for odd in ["a=simulcast:recv", "a=simulcast:recv ;;;", "a=simulcast:send a recv ~b,c;d", "m=\na=rid:"] {
            let _ = fit_simulcast_recv(odd, 1);
        }
        assert_eq!(fit_simulcast_recv("a=simulcast:send a recv ~b,c;d\n", 1).0, "a=simulcast:send a recv ~b,c\n");
    }

    fn message_for(offer: &str) -> String {
        let error = SdpOffer::from_sdp_string(offer).expect_err("the offer does not parse");
        parse_error(offer, &error.to_string())
    }

    #[test]
    fn parse_errors_name_the_line_and_no_address() {
        let message = message_for("hello");
        assert_eq!(
            message_for("v=\"\r\n"),
            "the SDP offer could not be parsed at line 1 (`v=\"`): Unexpected `\"`; Unexpected `v`; Expected `0` or `v`; sdp line"
        );
        assert_eq!(
            message,
            "the SDP offer could not be parsed at line 1 (`hello`): Unexpected `h`; Expected `v`; sdp line"
        );
        let message = message_for("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns\r\nt=0 0\r\n");
        assert_eq!(
            message,
            "the SDP offer could not be parsed at line 3 (`s`): Unexpected `\\r`; Unexpected `s`; Expected `=` or `s`; sdp line"
        );
        let long = format!("v=0\r\nx={}\r\n", "y".repeat(100));
        let message = message_for(&long);
        assert!(message.contains(&format!("at line 2 (`x={}…`)", "y".repeat(58))), "{message}");
        let no_direction =
            "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 0\r\na=mid:0\r\n";
        let message = message_for(no_direction);
        assert!(message.contains("Expected exactly one of a=sendrecv"), "{message}");
        for m in [message_for("hello"), message_for(no_direction), message_for(&long)] {
            assert!(!m.contains("0x") && !m.contains("Pointer"), "{m}");
        }
    }

    #[test]
    fn positions_outside_the_offer_and_stray_addresses_are_dropped() {
        let error = "SDP parse: Parse error at PointerOffset(0x10)\nUnexpected `x` at 0x7ffd1234\n";
        assert_eq!(parse_error("v=0", error), "the SDP offer could not be parsed: Unexpected `x` at");
        let error = "SDP parse: Parse error at 12\nExpected `v`\n";
        assert_eq!(parse_error("v=0", error), "the SDP offer could not be parsed: Expected `v`");
        assert_eq!(
            parse_error("v=0", "SDP inconsistent: two BUNDLE groups"),
            "the SDP offer could not be parsed: SDP inconsistent: two BUNDLE groups"
        );
    }

    #[test]
    fn offered_codecs_of_enabled_audio_and_video() {
        let offer = "v=0\r\ns=-\r\n\
            m=audio 9 UDP/TLS/RTP/SAVPF 0 8 101 13\r\na=rtpmap:101 telephone-event/8000\r\n\
            m=video 0 UDP/TLS/RTP/SAVPF 96\r\na=rtpmap:96 VP8/90000\r\n\
            m=video 9 UDP/TLS/RTP/SAVPF 45 46 102\r\na=rtpmap:45 AV1/90000\r\na=rtpmap:46 rtx/90000\r\n\
            a=rtpmap:102 h264/90000\r\n\
            m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\n";
        assert_eq!(offered_codecs(offer), ["PCMU", "PCMA", "AV1", "H.264"]);
        assert_eq!(
            codec_list([Codec::Opus, Codec::Vp8, Codec::H264, Codec::H264, Codec::Vp9]),
            "Opus, VP8, H.264, VP9"
        );
    }
}
