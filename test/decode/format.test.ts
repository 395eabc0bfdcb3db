import { describe, expect, it } from 'vitest';
import { formatTimestamp, formatTranscript, toJson, toSrt, toTsv, toTxt, toVtt, type TranscriptFormat } from '../../src/decode/format.js';
import type { Segment, Transcript } from '../../src/decode/transcribe.js';
import { DecodingError } from '../../src/errors.js';

// Expected strings follow whisper/utils.py (format_timestamp and the writers' print calls); the
// timestamp table was computed by running OpenAI's format_timestamp in CPython 3, whose round()
// rounds the float product seconds * 1000 half to even.

describe('formatTimestamp', () => {
  const table: [number, string, string, number][] = [
    [0, '00:00.000', '00:00:00,000', 0],
    [0.0005, '00:00.000', '00:00:00,000', 0],
    [0.0015, '00:00.002', '00:00:00,002', 2],
    [0.0025, '00:00.002', '00:00:00,002', 2],
    [1.2345, '00:01.234', '00:00:01,234', 1234],
    [2.02, '00:02.020', '00:00:02,020', 2020],
    [59.9996, '01:00.000', '00:01:00,000', 60000],
    [61.0, '01:01.000', '00:01:01,000', 61000],
    [3725.5, '01:02:05.500', '01:02:05,500', 3725500],
    [35999.9994, '09:59:59.999', '09:59:59,999', 35999999],
    [360000.25, '100:00:00.250', '100:00:00,250', 360000250],
    [7.0 + 0.02 * 13, '00:07.260', '00:00:07,260', 7260],
  ];
  it.each(table)('%s s', (seconds, vtt, srt) => {
    expect(formatTimestamp(seconds)).toBe(vtt);
    expect(formatTimestamp(seconds, true, ',')).toBe(srt);
  });
  it('rejects negative or NaN times', () => {
    expect(() => formatTimestamp(-0.001)).toThrow(DecodingError);
    expect(() => formatTimestamp(Number.NaN)).toThrow(DecodingError);
  });
});

function segment(id: number, start: number, end: number, text: string, tokens: number[] = []): Segment {
  return { id, seek: 0, start, end, text, tokens, temperature: 0, avgLogprob: -0.25, compressionRatio: 1.5, noSpeechProb: 0.125 };
}

const transcript: Transcript = {
  text: ' Hello there. a --> b\tc',
  language: 'en',
  segments: [
    segment(0, 0, 2.5, ' Hello there. ', [50364, 2425, 456, 13, 50489]),
    segment(1, 2.5, 3725.0015, ' a --> b\tc'),
    segment(2, 3725.0015, 3726, ''),
  ],
};

describe('writers', () => {
  it('txt: one stripped line per segment', () => {
    expect(toTxt(transcript)).toBe('Hello there.\na --> b\tc\n\n');
  });

  it('vtt', () => {
    expect(toVtt(transcript)).toBe(
      'WEBVTT\n\n' +
        '00:00.000 --> 00:02.500\nHello there.\n\n' +
        '00:02.500 --> 01:02:05.002\na -> b\tc\n\n' +
        '01:02:05.002 --> 01:02:06.000\n\n\n',
    );
  });

  it('srt', () => {
    expect(toSrt(transcript)).toBe(
      '1\n00:00:00,000 --> 00:00:02,500\nHello there.\n\n' +
        '2\n00:00:02,500 --> 01:02:05,002\na -> b\tc\n\n' +
        '3\n01:02:05,002 --> 01:02:06,000\n\n\n',
    );
  });

  it('tsv: integer milliseconds, tabs in text turned to spaces', () => {
    expect(toTsv(transcript)).toBe('start\tend\ttext\n0\t2500\tHello there.\n2500\t3725002\ta --> b c\n3725002\t3726000\t\n');
  });

  it('json: OpenAI field names and values', () => {
    const parsed = JSON.parse(toJson(transcript));
    expect(Object.keys(parsed)).toEqual(['text', 'segments', 'language']);
    expect(parsed.segments[0]).toEqual({
      id: 0, seek: 0, start: 0, end: 2.5, text: ' Hello there. ', tokens: [50364, 2425, 456, 13, 50489],
      temperature: 0, avg_logprob: -0.25, compression_ratio: 1.5, no_speech_prob: 0.125,
    });
    expect(parsed.segments[1].end).toBe(3725.0015);
  });

  it('formatTranscript dispatches by name and names the formats on a bad one', () => {
    expect(formatTranscript(transcript, 'srt')).toBe(toSrt(transcript));
    expect(formatTranscript(transcript, 'txt')).toBe(toTxt(transcript));
    expect(() => formatTranscript(transcript, 'doc' as TranscriptFormat)).toThrow(/txt, vtt, srt, tsv, json/);
  });
});
