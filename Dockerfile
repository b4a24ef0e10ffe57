# The training image for Vertex AI custom jobs (vertex_job.yaml, vertex_multiworker.yaml).
#
#   gcloud builds submit --tag=REGION-docker.pkg.dev/PROJECT/yt8m/distill:latest .
#
# TensorFlow, TensorBoard and CUDA come with the base image, at the version requirements.txt
# pins (there as tensorflow-cpu); the other dependencies are installed at requirements.txt's pins.
FROM tensorflow/tensorflow:2.21.0-gpu

# Log lines reach Cloud Logging as they are written.
ENV PYTHONUNBUFFERED=1

WORKDIR /youtube-8m

COPY requirements-cloud.txt ./
RUN python -m pip install --no-cache-dir -r requirements-cloud.txt

# The code: the flat modules only (tests, docs and data stay out).
COPY *.py ./
COPY datasets/ datasets/
COPY experiments/ experiments/
COPY layers/ layers/
COPY pipeline/ pipeline/
COPY runs/ runs/
COPY serving/ serving/
COPY training/ training/

# Arguments given in the job's containerSpec.args go to train.py.
ENTRYPOINT ["python", "train.py"]
