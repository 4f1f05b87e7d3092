-- Run once by the postgres image on an empty data directory. The database "regressops" (the
-- prediction log) is created by POSTGRES_DB; these hold the MLflow store and the source table.
CREATE DATABASE mlflow OWNER regressops;
CREATE DATABASE source OWNER regressops;
