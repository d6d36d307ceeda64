"""OS disk images: open any supported format as a byte stream, read its metadata, hash it, map its blocks;
`hil.images.builders` holds the builders of the images hil makes itself."""
