-- A short summary of each call, written when it ends (also embedded for recall).
ALTER TABLE calls ADD COLUMN summary text;
