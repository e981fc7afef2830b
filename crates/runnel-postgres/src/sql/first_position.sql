-- The first statement of every group commit: gives the transaction its id and returns the
-- position of its first event (see runnel_first_position in the migrations).
SELECT runnel_first_position()
