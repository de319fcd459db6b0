-- Replies as the caller got them: whether the caller had hung up before the reply finished,
-- and how much of the sent audio Twilio confirmed played (its `mark` echoes). `audio_ms` is
-- the audio sent on the socket; `t_first_audio_ms` stays NULL when nothing was sent.
ALTER TABLE replies ADD COLUMN hung_up boolean NOT NULL DEFAULT false;
ALTER TABLE replies ADD COLUMN audio_played_ms integer;
