-- Who or what ended a call, when it is not the call's own end: 'crash' for a call a dead
-- process left open, closed (status 'interrupted') by the next start on the same CONVENE_HOME.
ALTER TABLE calls ADD COLUMN ended_by text;
