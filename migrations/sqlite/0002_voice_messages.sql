-- Voice messages left by callers (after hours, or when no agent can take the
-- call): the WAV file relative to the data folder, and its length. Agents
-- list calls with a message to call the citizen back (deferred answer).
ALTER TABLE call_records ADD COLUMN voice_message TEXT;
ALTER TABLE call_records ADD COLUMN voice_message_ms INTEGER;
CREATE INDEX call_records_voice_message ON call_records (arrived_at) WHERE voice_message IS NOT NULL;
