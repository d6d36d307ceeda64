"""Test results as evidence: pytest's JUnit XML read strictly, allure-results cross-checked against it."""
