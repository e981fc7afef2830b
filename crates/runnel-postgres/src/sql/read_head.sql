-- The last position every reader may see (-1: none); see runnel_visible_head in the migrations.
SELECT runnel_visible_head()
