"""Public views of the data: the job's JSON shape that API responses and webhook bodies share,
and its progress estimate. May import models/, media/, catalogue/ and core/."""
