"""soraq: durable, observable jobs for AI video generation."""
