"""Developer tools that drive the project from the outside (local Airflow)."""
