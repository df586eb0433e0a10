"""barkctl's moto launcher: CloudFormation support for the resource types moto
skips, then moto's own server in this same process.

moto 5.2.5's CloudFormation logs "No Moto CloudFormation support for ..." and
skips AWS::ApiGatewayV2::*, AWS::SecretsManager::Secret (and its target
attachment), AWS::CloudWatch::Alarm and AWS::Lambda::EventInvokeConfig; a
GetAtt on such a resource then fails with HTTP 500. Each class below maps one
type onto moto's existing service backend, so the resources are listed by that
service's own API (get-apis, list-secrets, describe-alarms, ...).

moto builds its type map once, from CloudFormationModel.__subclasses__(), at the
first CloudFormation call: the classes must be direct subclasses, defined before
the server starts. Its model metaclass files a class under the service named by
the second part of its module path, hence the `__module__` lines.

It also resolves `{{resolve:secretsmanager:...}}` dynamic references (RDS
MasterUserPassword), which moto would pass through verbatim.

Usage: python moto_ext.py -H 127.0.0.1 -p 4566   (moto_server's arguments)
"""

import json
import random
import re
import string
import sys
import uuid

from moto.apigatewayv2.models import apigatewayv2_backends
from moto.awslambda.models import lambda_backends
from moto.cloudformation import parsing
from moto.cloudwatch.models import cloudwatch_backends
from moto.core.common_models import CloudFormationModel
from moto.rds.models import DBInstance, rds_backends
from moto.secretsmanager.models import secretsmanager_backends
from moto.secretsmanager.utils import random_password


def _props(cloudformation_json):
    return cloudformation_json.get("Properties") or {}


def _int(value, default=None):
    return default if value is None else int(value)


def _bool(value, default=None):
    if value is None:
        return default
    if isinstance(value, str):
        return value.lower() == "true"
    return bool(value)


def _camel(value):
    """CloudFormation's PascalCase keys -> the apigatewayv2 API's camelCase."""
    if isinstance(value, dict):
        return {k[:1].lower() + k[1:]: _camel(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_camel(v) for v in value]
    return value


def _random_id(n=10):
    return "".join(random.choice(string.ascii_lowercase + string.digits) for _ in range(n))


class _Resource:
    """What every model here shares: a physical id, GetAtt from a dict, and
    replacement on update (create the new one, then delete the old one, as
    CloudFormation does for a replacement)."""

    ATTRS = ()

    def __init__(self, account_id, region_name, physical_id, attrs=None):
        self.account_id = account_id
        self.region_name = region_name
        self._physical_id = physical_id
        self._attrs = attrs or {}

    @property
    def physical_resource_id(self):
        return self._physical_id

    @classmethod
    def has_cfn_attr(cls, attr):
        return attr in cls.ATTRS

    def get_cfn_attribute(self, attribute_name):
        if attribute_name in self._attrs:
            return self._attrs[attribute_name]
        from moto.cloudformation.exceptions import UnformattedGetAttTemplateException

        raise UnformattedGetAttTemplateException()

    def is_created(self):
        return True

    @classmethod
    def update_from_cloudformation_json(
        cls, original_resource, new_resource_name, cloudformation_json, account_id, region_name
    ):
        new = cls.create_from_cloudformation_json(
            new_resource_name, cloudformation_json, account_id, region_name
        )
        original_resource.delete(account_id, region_name)
        return new


# --- AWS::ApiGatewayV2 ------------------------------------------------------


def _apigw(account_id, region_name):
    return apigatewayv2_backends[account_id][region_name]


class BarkctlApiGatewayV2Api(_Resource, CloudFormationModel):
    __module__ = "moto.apigatewayv2.barkctl_ext"
    ATTRS = ("ApiEndpoint", "ApiId")

    @staticmethod
    def cloudformation_type():
        return "AWS::ApiGatewayV2::Api"

    @staticmethod
    def cloudformation_name_type():
        return "Name"

    @classmethod
    def create_from_cloudformation_json(
        cls, resource_name, cloudformation_json, account_id, region_name, **kwargs
    ):
        p = _props(cloudformation_json)
        protocol = p.get("ProtocolType", "HTTP")
        api = _apigw(account_id, region_name).create_api(
            api_key_selection_expression=p.get("ApiKeySelectionExpression"),
            cors_configuration=p.get("CorsConfiguration"),
            description=p.get("Description"),
            disable_schema_validation=p.get("DisableSchemaValidation"),
            disable_execute_api_endpoint=p.get("DisableExecuteApiEndpoint"),
            name=p.get("Name", resource_name),
            protocol_type=protocol,
            route_selection_expression=p.get("RouteSelectionExpression"),
            tags=p.get("Tags") or {},
            version=p.get("Version"),
        )
        if protocol == "WEBSOCKET":
            # AWS gives WebSocket APIs a wss:// endpoint; moto says https://.
            api.api_endpoint = "wss://" + api.api_endpoint.split("://", 1)[1]
        return cls(
            account_id,
            region_name,
            api.api_id,
            {"ApiEndpoint": api.api_endpoint, "ApiId": api.api_id},
        )

    @classmethod
    def update_from_cloudformation_json(
        cls, original_resource, new_resource_name, cloudformation_json, account_id, region_name
    ):
        # In place, as AWS does: the ApiId (and so the endpoint the handlers
        # are configured with) must survive a rename.
        p = _props(cloudformation_json)
        api = _apigw(account_id, region_name).get_api(original_resource.physical_resource_id)
        api.name = p.get("Name", api.name)
        api.description = p.get("Description", api.description)
        if p.get("RouteSelectionExpression"):
            api.route_selection_expression = p["RouteSelectionExpression"]
        return original_resource

    def delete(self, account_id, region_name):
        _apigw(account_id, region_name).delete_api(self.physical_resource_id)


class BarkctlApiGatewayV2Integration(_Resource, CloudFormationModel):
    __module__ = "moto.apigatewayv2.barkctl_ext"
    ATTRS = ("IntegrationId",)

    @staticmethod
    def cloudformation_type():
        return "AWS::ApiGatewayV2::Integration"

    @staticmethod
    def cloudformation_name_type():
        return ""

    @classmethod
    def create_from_cloudformation_json(
        cls, resource_name, cloudformation_json, account_id, region_name, **kwargs
    ):
        p = _props(cloudformation_json)
        api_id = p["ApiId"]
        integration = _apigw(account_id, region_name).create_integration(
            api_id=api_id,
            connection_id=p.get("ConnectionId"),
            connection_type=p.get("ConnectionType", "INTERNET"),
            content_handling_strategy=p.get("ContentHandlingStrategy"),
            credentials_arn=p.get("CredentialsArn"),
            description=p.get("Description"),
            integration_method=p.get("IntegrationMethod"),
            integration_subtype=p.get("IntegrationSubtype"),
            integration_type=p["IntegrationType"],
            integration_uri=p.get("IntegrationUri"),
            passthrough_behavior=p.get("PassthroughBehavior"),
            payload_format_version=p.get("PayloadFormatVersion"),
            request_parameters=p.get("RequestParameters"),
            request_templates=p.get("RequestTemplates"),
            response_parameters=p.get("ResponseParameters"),
            template_selection_expression=p.get("TemplateSelectionExpression"),
            timeout_in_millis=p.get("TimeoutInMillis"),
            tls_config=p.get("TlsConfig"),
        )
        resource = cls(account_id, region_name, integration.id, {"IntegrationId": integration.id})
        resource.api_id = api_id
        return resource

    def delete(self, account_id, region_name):
        backend = _apigw(account_id, region_name)
        if self.api_id in backend.apis:
            backend.delete_integration(self.api_id, self.physical_resource_id)


class BarkctlApiGatewayV2Route(_Resource, CloudFormationModel):
    __module__ = "moto.apigatewayv2.barkctl_ext"
    ATTRS = ("RouteId",)

    @staticmethod
    def cloudformation_type():
        return "AWS::ApiGatewayV2::Route"

    @staticmethod
    def cloudformation_name_type():
        return ""

    @classmethod
    def create_from_cloudformation_json(
        cls, resource_name, cloudformation_json, account_id, region_name, **kwargs
    ):
        p = _props(cloudformation_json)
        api_id = p["ApiId"]
        route = _apigw(account_id, region_name).create_route(
            api_id=api_id,
            api_key_required=_bool(p.get("ApiKeyRequired"), False),
            authorization_scopes=p.get("AuthorizationScopes"),
            authorization_type=p.get("AuthorizationType"),
            authorizer_id=p.get("AuthorizerId"),
            model_selection_expression=p.get("ModelSelectionExpression"),
            operation_name=p.get("OperationName"),
            request_models=p.get("RequestModels"),
            request_parameters=p.get("RequestParameters"),
            route_key=p["RouteKey"],
            route_response_selection_expression=p.get("RouteResponseSelectionExpression"),
            target=p.get("Target"),
        )
        resource = cls(account_id, region_name, route.route_id, {"RouteId": route.route_id})
        resource.api_id = api_id
        return resource

    def delete(self, account_id, region_name):
        backend = _apigw(account_id, region_name)
        if self.api_id in backend.apis:
            backend.delete_route(self.api_id, self.physical_resource_id)


class BarkctlApiGatewayV2Stage(_Resource, CloudFormationModel):
    __module__ = "moto.apigatewayv2.barkctl_ext"
    ATTRS = ()

    @staticmethod
    def cloudformation_type():
        return "AWS::ApiGatewayV2::Stage"

    @staticmethod
    def cloudformation_name_type():
        return ""

    @classmethod
    def create_from_cloudformation_json(
        cls, resource_name, cloudformation_json, account_id, region_name, **kwargs
    ):
        p = _props(cloudformation_json)
        api_id = p["ApiId"]
        config = {"stageName": p["StageName"]}
        for key in ("Description", "DeploymentId", "ClientCertificateId"):
            if p.get(key) is not None:
                config[key[:1].lower() + key[1:]] = p[key]
        if p.get("AutoDeploy") is not None:
            config["autoDeploy"] = _bool(p["AutoDeploy"])
        for key in ("DefaultRouteSettings", "AccessLogSettings"):
            if p.get(key):
                config[key[:1].lower() + key[1:]] = _camel(p[key])
        # Maps keyed by route key / variable / tag name: only values change case.
        if p.get("RouteSettings"):
            config["routeSettings"] = {k: _camel(v) for k, v in p["RouteSettings"].items()}
        if p.get("StageVariables"):
            config["stageVariables"] = p["StageVariables"]
        if p.get("Tags"):
            config["tags"] = p["Tags"]
        stage = _apigw(account_id, region_name).create_stage(api_id, config)
        resource = cls(account_id, region_name, stage.name)
        resource.api_id = api_id
        return resource

    def delete(self, account_id, region_name):
        backend = _apigw(account_id, region_name)
        if self.api_id in backend.apis:
            backend.delete_stage(self.api_id, self.physical_resource_id)


class BarkctlApiGatewayV2Deployment(_Resource, CloudFormationModel):
    """moto's apigatewayv2 has no deployments: a recorded resource with an id,
    so that Ref and DependsOn work; the service API does not list it."""

    __module__ = "moto.apigatewayv2.barkctl_ext"
    ATTRS = ("DeploymentId",)

    @staticmethod
    def cloudformation_type():
        return "AWS::ApiGatewayV2::Deployment"

    @staticmethod
    def cloudformation_name_type():
        return ""

    @classmethod
    def create_from_cloudformation_json(
        cls, resource_name, cloudformation_json, account_id, region_name, **kwargs
    ):
        _apigw(account_id, region_name).get_api(_props(cloudformation_json)["ApiId"])
        deployment_id = _random_id(6)
        return cls(account_id, region_name, deployment_id, {"DeploymentId": deployment_id})

    def delete(self, account_id, region_name):
        pass


# --- AWS::SecretsManager ----------------------------------------------------


def _secrets(account_id, region_name):
    return secretsmanager_backends[account_id][region_name]


def _generate_secret_string(spec):
    password = random_password(
        _int(spec.get("PasswordLength"), 32),
        spec.get("ExcludeCharacters", ""),
        _bool(spec.get("ExcludeNumbers"), False),
        _bool(spec.get("ExcludePunctuation"), False),
        _bool(spec.get("ExcludeUppercase"), False),
        _bool(spec.get("ExcludeLowercase"), False),
        _bool(spec.get("IncludeSpace"), False),
        _bool(spec.get("RequireEachIncludedType"), True),
    )
    template = spec.get("SecretStringTemplate")
    key = spec.get("GenerateStringKey")
    if template is None and key is None:
        return password
    if template is None or key is None:
        raise ValueError(
            "GenerateSecretString needs both SecretStringTemplate and GenerateStringKey, or neither"
        )
    value = json.loads(template)
    value[key] = password
    return json.dumps(value)


class BarkctlSecretsManagerSecret(_Resource, CloudFormationModel):
    __module__ = "moto.secretsmanager.barkctl_ext"
    ATTRS = ("Id",)

    @staticmethod
    def cloudformation_type():
        return "AWS::SecretsManager::Secret"

    @staticmethod
    def cloudformation_name_type():
        return "Name"

    @classmethod
    def create_from_cloudformation_json(
        cls, resource_name, cloudformation_json, account_id, region_name, **kwargs
    ):
        p = _props(cloudformation_json)
        if p.get("SecretString") is not None and p.get("GenerateSecretString"):
            raise ValueError("a secret takes SecretString or GenerateSecretString, not both")
        secret_string = p.get("SecretString")
        if secret_string is None:
            secret_string = _generate_secret_string(p.get("GenerateSecretString") or {})
        created = _secrets(account_id, region_name).create_secret(
            name=p.get("Name", resource_name),
            secret_string=secret_string,
            secret_binary=None,
            description=p.get("Description"),
            tags=p.get("Tags"),
            kms_key_id=p.get("KmsKeyId"),
            client_request_token=None,
            replica_regions=[],
            force_overwrite=False,
        )
        arn = json.loads(created)["ARN"]
        return cls(account_id, region_name, arn, {"Id": arn})

    @classmethod
    def update_from_cloudformation_json(
        cls, original_resource, new_resource_name, cloudformation_json, account_id, region_name
    ):
        # In place: the ARN stays, a generated password is not regenerated
        # (AWS keeps it too unless GenerateSecretString itself changes).
        p = _props(cloudformation_json)
        backend = _secrets(account_id, region_name)
        arn = original_resource.physical_resource_id
        secret = backend.secrets[arn]
        secret.description = p.get("Description")
        if p.get("KmsKeyId"):
            secret.kms_key_id = p["KmsKeyId"]
        current = backend.get_secret_value(arn, None, "AWSCURRENT").get("SecretString")
        if p.get("SecretString") is not None and p["SecretString"] != current:
            # The backend wants a fresh version token, as the API layer would pass.
            backend.put_secret_value(
                arn, p["SecretString"], None, str(uuid.uuid4()), ["AWSCURRENT"]
            )
        return original_resource

    def delete(self, account_id, region_name):
        backend = _secrets(account_id, region_name)
        if self.physical_resource_id in backend.secrets:
            backend.delete_secret(self.physical_resource_id, None, True)


class BarkctlSecretTargetAttachment(_Resource, CloudFormationModel):
    """Adds the database's connection fields to the secret's JSON, as an
    RDS-attached secret has them. Ref is the secret's ARN, as in AWS."""

    __module__ = "moto.secretsmanager.barkctl_ext"
    ATTRS = ()

    @staticmethod
    def cloudformation_type():
        return "AWS::SecretsManager::SecretTargetAttachment"

    @staticmethod
    def cloudformation_name_type():
        return ""

    @classmethod
    def create_from_cloudformation_json(
        cls, resource_name, cloudformation_json, account_id, region_name, **kwargs
    ):
        p = _props(cloudformation_json)
        backend = _secrets(account_id, region_name)
        secret = backend.secrets[p["SecretId"]]
        fields = _target_fields(account_id, region_name, p.get("TargetType"), p["TargetId"])
        current = backend.get_secret_value(secret.arn, None, "AWSCURRENT").get("SecretString")
        try:
            value = json.loads(current or "{}")
        except ValueError:
            value = None
        if fields and isinstance(value, dict):
            value.update(fields)
            backend.put_secret_value(secret.arn, json.dumps(value), None, None, ["AWSCURRENT"])
        return cls(account_id, region_name, secret.arn)

    @classmethod
    def update_from_cloudformation_json(
        cls, original_resource, new_resource_name, cloudformation_json, account_id, region_name
    ):
        return cls.create_from_cloudformation_json(
            new_resource_name, cloudformation_json, account_id, region_name
        )

    def delete(self, account_id, region_name):
        # AWS leaves the secret's value as it is when the attachment goes.
        pass


def _target_fields(account_id, region_name, target_type, target_id):
    """host, port, engine, dbname of an RDS instance or cluster moto knows."""
    backend = rds_backends[account_id][region_name]
    if target_type == "AWS::RDS::DBCluster":
        cluster = backend.clusters.get(target_id)
        if cluster is None:
            return {}
        return {
            "host": cluster.endpoint,
            "port": int(cluster.port),
            "engine": cluster.engine,
            "dbname": cluster.database_name,
        }
    db = backend.databases.get(target_id)
    if db is None:
        return {}
    fields = {"host": db.address, "port": int(db.port), "engine": db.engine}
    if db.db_name:
        fields["dbname"] = db.db_name
    return fields


# --- AWS::CloudWatch::Alarm -------------------------------------------------


class BarkctlCloudWatchAlarm(_Resource, CloudFormationModel):
    __module__ = "moto.cloudwatch.barkctl_ext"
    ATTRS = ("Arn",)

    @staticmethod
    def cloudformation_type():
        return "AWS::CloudWatch::Alarm"

    @staticmethod
    def cloudformation_name_type():
        return "AlarmName"

    @classmethod
    def create_from_cloudformation_json(
        cls, resource_name, cloudformation_json, account_id, region_name, **kwargs
    ):
        p = _props(cloudformation_json)
        if p.get("Metrics"):
            # Metric math alarms would need moto's MetricDataQuery objects;
            # the BarkBase stacks use single-metric alarms only.
            raise ValueError("barkctl's moto extension supports single-metric alarms only")
        threshold = p.get("Threshold")
        alarm = cloudwatch_backends[account_id][region_name].put_metric_alarm(
            name=p.get("AlarmName", resource_name),
            namespace=p.get("Namespace"),
            metric_name=p.get("MetricName"),
            comparison_operator=p["ComparisonOperator"],
            evaluation_periods=_int(p["EvaluationPeriods"]),
            period=_int(p.get("Period")),
            threshold=None if threshold is None else float(threshold),
            statistic=p.get("Statistic"),
            description=p.get("AlarmDescription"),
            dimensions=p.get("Dimensions") or [],
            alarm_actions=p.get("AlarmActions") or [],
            datapoints_to_alarm=_int(p.get("DatapointsToAlarm")),
            extended_statistic=p.get("ExtendedStatistic"),
            ok_actions=p.get("OKActions") or [],
            insufficient_data_actions=p.get("InsufficientDataActions") or [],
            unit=p.get("Unit"),
            actions_enabled=_bool(p.get("ActionsEnabled"), True),
            treat_missing_data=p.get("TreatMissingData"),
            evaluate_low_sample_count_percentile=p.get("EvaluateLowSampleCountPercentile"),
            threshold_metric_id=p.get("ThresholdMetricId"),
            tags=p.get("Tags"),
        )
        return cls(account_id, region_name, alarm.name, {"Arn": alarm.alarm_arn})

    @classmethod
    def update_from_cloudformation_json(
        cls, original_resource, new_resource_name, cloudformation_json, account_id, region_name
    ):
        new = cls.create_from_cloudformation_json(
            new_resource_name, cloudformation_json, account_id, region_name
        )
        # put_metric_alarm overwrote it in place when the name is unchanged.
        if new.physical_resource_id != original_resource.physical_resource_id:
            original_resource.delete(account_id, region_name)
        return new

    def delete(self, account_id, region_name):
        cloudwatch_backends[account_id][region_name].delete_alarms([self.physical_resource_id])


# --- AWS::Lambda::EventInvokeConfig -----------------------------------------


class BarkctlLambdaEventInvokeConfig(_Resource, CloudFormationModel):
    __module__ = "moto.awslambda.barkctl_ext"
    ATTRS = ()

    @staticmethod
    def cloudformation_type():
        return "AWS::Lambda::EventInvokeConfig"

    @staticmethod
    def cloudformation_name_type():
        return ""

    @classmethod
    def create_from_cloudformation_json(
        cls, resource_name, cloudformation_json, account_id, region_name, **kwargs
    ):
        p = _props(cloudformation_json)
        function_name = p["FunctionName"]
        config = {}
        if p.get("MaximumRetryAttempts") is not None:
            config["MaximumRetryAttempts"] = _int(p["MaximumRetryAttempts"])
        if p.get("MaximumEventAgeInSeconds") is not None:
            config["MaximumEventAgeInSeconds"] = _int(p["MaximumEventAgeInSeconds"])
        if p.get("DestinationConfig"):
            config["DestinationConfig"] = p["DestinationConfig"]
        backend = lambda_backends[account_id][region_name]
        # moto appends on every put; a function has one config per qualifier
        # and the stacks use $LATEST, so replace rather than stack them up.
        backend.get_function(function_name).event_invoke_config = []
        backend.put_function_event_invoke_config(function_name, config)
        resource = cls(account_id, region_name, f"{function_name}:{p.get('Qualifier', '$LATEST')}")
        resource.function_name = function_name
        return resource

    @classmethod
    def update_from_cloudformation_json(
        cls, original_resource, new_resource_name, cloudformation_json, account_id, region_name
    ):
        new = cls.create_from_cloudformation_json(
            new_resource_name, cloudformation_json, account_id, region_name
        )
        if new.function_name != original_resource.function_name:
            original_resource.delete(account_id, region_name)
        return new

    def delete(self, account_id, region_name):
        backend = lambda_backends[account_id][region_name]
        try:
            backend.get_function(self.function_name).event_invoke_config = []
        except Exception:
            # The function went first (stack delete order): nothing to undo.
            pass


# --- {{resolve:secretsmanager:...}} ------------------------------------------

_DYNAMIC_REF = re.compile(r"\{\{resolve:secretsmanager:(.+?)\}\}")


def _resolve_secret_reference(reference, account_id, region_name):
    """`secret-id:SecretString:json-key:version-stage:version-id`, where the
    secret id may be an ARN (itself full of colons) and the rest is optional."""
    parts = reference.split(":")
    if reference.startswith("arn:"):
        secret_id, rest = ":".join(parts[:7]), parts[7:]
    else:
        secret_id, rest = parts[0], parts[1:]
    json_key = rest[1] if len(rest) > 1 and rest[1] else None
    version_stage = rest[2] if len(rest) > 2 and rest[2] else None
    version_id = rest[3] if len(rest) > 3 and rest[3] else None
    if version_stage is None and version_id is None:
        version_stage = "AWSCURRENT"
    value = _secrets(account_id, region_name).get_secret_value(
        secret_id, version_id, version_stage
    )["SecretString"]
    if json_key is None:
        return value
    return str(json.loads(value)[json_key])


_original_clean_json = parsing.clean_json


def _clean_json(resource_json, resources_map):
    value = _original_clean_json(resource_json, resources_map)
    if isinstance(value, str) and "{{resolve:secretsmanager:" in value:
        return _DYNAMIC_REF.sub(
            lambda m: _resolve_secret_reference(
                m.group(1), resources_map._account_id, resources_map._region_name
            ),
            value,
        )
    return value


# clean_json recurses through the module global, so nested values (a Join
# inside a property) pass through the wrapper too.
parsing.clean_json = _clean_json


# --- AWS::RDS::DBInstance port ------------------------------------------------

_original_db_instance_create = DBInstance.create_from_cloudformation_json.__func__


def _db_instance_create(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):
    # moto defaults a CloudFormation DB instance's Port to 3306 whatever the
    # engine, so a postgres instance's Endpoint.Port (and the port merged into
    # its attached secret) would say 3306; AWS uses the engine's default.
    props = cloudformation_json.setdefault("Properties", {})
    if props.get("Port") is None and props.get("Engine"):
        try:
            props["Port"] = DBInstance.default_port(props["Engine"])
        except KeyError:
            pass
    return _original_db_instance_create(
        cls, resource_name, cloudformation_json, account_id, region_name, **kwargs
    )


DBInstance.create_from_cloudformation_json = classmethod(_db_instance_create)

# --- DynamoDB streams are left for barkctl dev ---------------------------------
#
# moto hands a table's stream records to the Lambda functions of its event source
# mappings itself (through Docker) and then empties the shard, whatever that
# delivery did. Without Docker the records are simply lost, and `barkctl dev`,
# which polls the stream as Lambda's pollers would, never sees them. Delivery
# is its job: moto keeps the records in the shard, readable by GetRecords.
from moto.awslambda.models import LambdaBackend  # noqa: E402


def _keep_stream_records(self, function_arn, items, source):
    return None


LambdaBackend.send_dynamodb_items = _keep_stream_records

SUPPORTED_TYPES = sorted(
    cls.cloudformation_type()
    for cls in CloudFormationModel.__subclasses__()
    if cls.__name__.startswith("Barkctl")
)


def main(argv):
    from moto import server

    print(
        "barkctl moto extension: CloudFormation support for " + ", ".join(SUPPORTED_TYPES),
        file=sys.stderr,
        flush=True,
    )
    server.main(argv)


if __name__ == "__main__":
    main(sys.argv[1:])
