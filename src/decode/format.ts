import { DecodingError } from '../errors.js';
import { pythonStrip, roundHalfEven } from './python-compat.js';
import type { Transcript } from './transcribe.js';

// Transcript writers with the output of OpenAI's whisper/utils.py writers (WriteTXT, WriteVTT,
// WriteSRT, WriteTSV, WriteJSON) for segment-level transcripts.

/** Output formats of {@link formatTranscript}. */
export type TranscriptFormat = 'txt' | 'vtt' | 'srt' | 'tsv' | 'json';

/** All formats, in OpenAI's CLI order. */
export const TRANSCRIPT_FORMATS: readonly TranscriptFormat[] = ['txt', 'vtt', 'srt', 'tsv', 'json'];

/**
 * OpenAI's `format_timestamp`: [hh:]mm:ss.mmm with milliseconds rounded half to even; hours
 * appear when nonzero or `alwaysIncludeHours`.
 */
export function formatTimestamp(seconds: number, alwaysIncludeHours = false, decimalMarker = '.'): string {
  if (!(seconds >= 0)) throw new DecodingError(`formatTimestamp: expected a non-negative time, got ${seconds}`);
  let ms = roundHalfEven(seconds * 1000);
  const hours = Math.floor(ms / 3_600_000);
  ms -= hours * 3_600_000;
  const minutes = Math.floor(ms / 60_000);
  ms -= minutes * 60_000;
  const secs = Math.floor(ms / 1000);
  ms -= secs * 1000;
  const pad = (n: number, width: number): string => String(n).padStart(width, '0');
  const hoursMarker = alwaysIncludeHours || hours > 0 ? `${pad(hours, 2)}:` : '';
  return `${hoursMarker}${pad(minutes, 2)}:${pad(secs, 2)}${decimalMarker}${pad(ms, 3)}`;
}

/** Segment text for subtitles: stripped, with "-->" (the cue arrow) turned into "->". */
function cueText(text: string): string {
  return pythonStrip(text).replaceAll('-->', '->');
}

/** One line per segment, its text stripped. */
export function toTxt(transcript: Transcript): string {
  return transcript.segments.map((s) => `${pythonStrip(s.text)}\n`).join('');
}

/** WebVTT: a "WEBVTT" header, then one cue per segment (hours only when nonzero). */
export function toVtt(transcript: Transcript): string {
  const cues = transcript.segments.map((s) => `${formatTimestamp(s.start)} --> ${formatTimestamp(s.end)}\n${cueText(s.text)}\n\n`);
  return `WEBVTT\n\n${cues.join('')}`;
}

/** SubRip: numbered cues from 1, times as hh:mm:ss,mmm. */
export function toSrt(transcript: Transcript): string {
  return transcript.segments
    .map((s, i) => `${i + 1}\n${formatTimestamp(s.start, true, ',')} --> ${formatTimestamp(s.end, true, ',')}\n${cueText(s.text)}\n\n`)
    .join('');
}

/** Tab-separated start and end in integer milliseconds, then the text (tabs turned to spaces). */
export function toTsv(transcript: Transcript): string {
  const rows = transcript.segments.map((s) => `${roundHalfEven(1000 * s.start)}\t${roundHalfEven(1000 * s.end)}\t${pythonStrip(s.text).replaceAll('\t', ' ')}\n`);
  return `start\tend\ttext\n${rows.join('')}`;
}

/**
 * The transcript as JSON with OpenAI's field names (text, segments with id, seek, start, end,
 * text, tokens, temperature, avg_logprob, compression_ratio, no_speech_prob; language), so
 * tools that read whisper's .json read it. Written by JSON.stringify: same values, though
 * Python's json writes floats and non-ASCII differently (1.0 for 1, \u escapes).
 */
export function toJson(transcript: Transcript): string {
  return JSON.stringify({
    text: transcript.text,
    segments: transcript.segments.map((s) => ({
      id: s.id,
      seek: s.seek,
      start: s.start,
      end: s.end,
      text: s.text,
      tokens: s.tokens,
      temperature: s.temperature,
      avg_logprob: s.avgLogprob,
      compression_ratio: s.compressionRatio,
      no_speech_prob: s.noSpeechProb,
    })),
    language: transcript.language,
  });
}

/** The transcript in `format`. */
export function formatTranscript(transcript: Transcript, format: TranscriptFormat): string {
  switch (format) {
    case 'txt': return toTxt(transcript);
    case 'vtt': return toVtt(transcript);
    case 'srt': return toSrt(transcript);
    case 'tsv': return toTsv(transcript);
    case 'json': return toJson(transcript);
    default: throw new DecodingError(`unknown transcript format "${String(format)}"; expected one of ${TRANSCRIPT_FORMATS.join(', ')}`);
  }
}
