-- How many events lie at positions $1 through $2, counting no further than $3.
SELECT count(*)
FROM (SELECT 1
      FROM runnel_events
      WHERE position >= $1 AND position <= $2
      LIMIT $3) AS counted
