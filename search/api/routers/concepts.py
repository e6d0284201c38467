"""Concepts: names defined by example images. ``GET /concepts`` lists them,
``PUT /concepts/{name}`` defines (or redefines) one, ``DELETE /concepts/{name}`` forgets one.

Examples come as base64 images (decoded under the server's limits) or indexed images' ids; a
concept keeps their embeddings only. Names may hold any character (``/`` escaped in the URL).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Response
from fastapi import Path as PathParam

from search.api.dependencies import Client, Server
from search.concepts import Concept
from search.messages import MAX_NAME_CHARS, ConceptBody, ConceptRequest

ConceptName = Annotated[
    str,
    PathParam(
        min_length=1,
        max_length=MAX_NAME_CHARS,
        description="The concept's name (case and spaces aside, one name is one concept).",
    ),
]


def concept_body(concept: Concept) -> ConceptBody:
    """A concept as the API describes it (its vectors stay here)."""
    return ConceptBody.model_validate(concept.to_dict())


router = APIRouter(tags=["concepts"])


@router.get("/concepts")
def concepts(client: Client) -> list[ConceptBody]:
    """The registered concepts, by name."""
    return [concept_body(concept) for concept in client.concepts()]


@router.put("/concepts/{name:path}")
def define_concept(server: Server, name: ConceptName, body: ConceptRequest) -> ConceptBody:
    """Register a name by one to 64 example images, replacing a concept of that name;
    name queries (``name=...``) then find it first."""
    concept = server.client.define_concept(name, body, examples=server.examples.reader())
    return concept_body(concept)


@router.delete("/concepts/{name:path}", status_code=204, response_class=Response)
def remove_concept(client: Client, name: ConceptName) -> Response:
    """Forget a concept (400 when no concept has that name)."""
    client.remove_concept(name)
    return Response(status_code=204)
