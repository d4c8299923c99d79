"""The organiser's submission server (`harness server`): FastAPI over the service layer (`harness.service.intake`,
`harness.service.competitions`). Participants authenticate with their token; they upload projects, read their own
submissions and runs, and the public board. Nothing private is served."""
