"""Checks of moto_ext.py's Python-only behaviour, in-process with moto's
mock_aws (no server): `{{resolve:secretsmanager:...}}` references, the secret
target attachment, the RDS port default and in-place updates.

Run with the emulator venv's python from this folder:
    .barkctl/local/venv/bin/python src/local/moto_ext_test.py
(tests/integration/local.rs does that).
"""

import json
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")

import boto3  # noqa: E402
from moto import mock_aws  # noqa: E402

import moto_ext  # noqa: E402  (registers the models and patches before any CFN call)

SECRET = {
    "Type": "AWS::SecretsManager::Secret",
    "Properties": {
        "Name": "app/local/postgres/credentials",
        "GenerateSecretString": {
            "SecretStringTemplate": '{"username": "bark"}',
            "GenerateStringKey": "password",
            "PasswordLength": 32,
            "ExcludeCharacters": "\"@/\\ '",
        },
    },
}


def resolve(key):
    return {"Fn::Join": ["", ["{{resolve:secretsmanager:", {"Ref": "DbSecret"}, f":SecretString:{key}}}}}"]]}


DATABASE = {
    "Resources": {
        "DbSecret": SECRET,
        "Db": {
            "Type": "AWS::RDS::DBInstance",
            "Properties": {
                "Engine": "postgres",
                "DBInstanceClass": "db.t3.micro",
                "DBName": "barkbase",
                "AllocatedStorage": "20",
                "MasterUsername": resolve("username"),
                "MasterUserPassword": resolve("password"),
            },
        },
        "Attachment": {
            "Type": "AWS::SecretsManager::SecretTargetAttachment",
            "Properties": {
                "SecretId": {"Ref": "DbSecret"},
                "TargetId": {"Ref": "Db"},
                "TargetType": "AWS::RDS::DBInstance",
            },
        },
    },
    "Outputs": {
        "SecretArn": {"Value": {"Ref": "Attachment"}},
        "DbPort": {"Value": {"Fn::GetAtt": ["Db", "Endpoint.Port"]}},
    },
}


def outputs(cfn, name):
    stack = cfn.describe_stacks(StackName=name)["Stacks"][0]
    return {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}


@mock_aws
class DatabaseStack(unittest.TestCase):
    def setUp(self):
        self.cfn = boto3.client("cloudformation")
        self.cfn.create_stack(StackName="db", TemplateBody=json.dumps(DATABASE))

    def test_dynamic_references_resolve_to_the_generated_credentials(self):
        secret = json.loads(
            boto3.client("secretsmanager").get_secret_value(SecretId="app/local/postgres/credentials")[
                "SecretString"
            ]
        )
        db = boto3.client("rds").describe_db_instances()["DBInstances"][0]
        self.assertEqual(db["MasterUsername"], "bark")
        self.assertNotIn("{{resolve", json.dumps(db, default=str))
        self.assertEqual(len(secret["password"]), 32)
        for c in "\"@/\\ '":
            self.assertNotIn(c, secret["password"])

    def test_attachment_merges_connection_fields_and_refs_the_secret(self):
        sm = boto3.client("secretsmanager")
        value = sm.get_secret_value(SecretId="app/local/postgres/credentials")
        secret = json.loads(value["SecretString"])
        db = boto3.client("rds").describe_db_instances()["DBInstances"][0]
        self.assertEqual(secret["host"], db["Endpoint"]["Address"])
        self.assertEqual(secret["port"], 5432)
        self.assertEqual(secret["engine"], "postgres")
        self.assertEqual(secret["dbname"], "barkbase")
        self.assertEqual(secret["username"], "bark")
        out = outputs(self.cfn, "db")
        self.assertEqual(out["SecretArn"], value["ARN"])
        # moto says 3306 for every CloudFormation DB instance without the fix.
        self.assertEqual(out["DbPort"], "5432")


@mock_aws
class References(unittest.TestCase):
    def test_arn_ids_versions_and_whole_strings(self):
        sm = boto3.client("secretsmanager")
        arn = sm.create_secret(Name="plain", SecretString="s3cret")["ARN"]
        json_arn = sm.create_secret(Name="json", SecretString='{"k": "v"}')["ARN"]
        resolve_ref = moto_ext._resolve_secret_reference
        self.assertEqual(resolve_ref(arn, "123456789012", "us-east-1"), "s3cret")
        self.assertEqual(resolve_ref("plain:SecretString", "123456789012", "us-east-1"), "s3cret")
        self.assertEqual(resolve_ref(f"{json_arn}:SecretString:k", "123456789012", "us-east-1"), "v")
        self.assertEqual(
            resolve_ref("json:SecretString:k:AWSCURRENT", "123456789012", "us-east-1"), "v"
        )


@mock_aws
class Updates(unittest.TestCase):
    def test_api_update_keeps_its_id_and_secret_keeps_its_arn(self):
        def template(name):
            return json.dumps(
                {
                    "Resources": {
                        "Api": {
                            "Type": "AWS::ApiGatewayV2::Api",
                            "Properties": {"Name": name, "ProtocolType": "WEBSOCKET"},
                        },
                        "DbSecret": dict(SECRET, Properties=dict(SECRET["Properties"], Description=name)),
                    },
                    "Outputs": {
                        "ApiId": {"Value": {"Ref": "Api"}},
                        "SecretArn": {"Value": {"Ref": "DbSecret"}},
                    },
                }
            )

        cfn = boto3.client("cloudformation")
        cfn.create_stack(StackName="u", TemplateBody=template("one"))
        before = outputs(cfn, "u")
        cfn.update_stack(StackName="u", TemplateBody=template("two"))
        after = outputs(cfn, "u")
        self.assertEqual(before, after)
        apis = boto3.client("apigatewayv2").get_apis()["Items"]
        self.assertEqual([a["Name"] for a in apis], ["two"])
        described = boto3.client("secretsmanager").describe_secret(SecretId=after["SecretArn"])
        self.assertEqual(described["Description"], "two")


@mock_aws
class Tags(unittest.TestCase):
    def test_alarm_api_and_secret_tags_reach_their_services(self):
        tags = [{"Key": "barkctl:stage", "Value": "local"}]
        template = {
            "Resources": {
                "Alarm": {
                    "Type": "AWS::CloudWatch::Alarm",
                    "Properties": {
                        "AlarmName": "errors",
                        "Namespace": "AWS/Lambda",
                        "MetricName": "Errors",
                        "Statistic": "Sum",
                        "Period": "300",
                        "EvaluationPeriods": "1",
                        "Threshold": "1",
                        "ComparisonOperator": "GreaterThanOrEqualToThreshold",
                        "Tags": tags,
                    },
                },
                "Api": {
                    "Type": "AWS::ApiGatewayV2::Api",
                    "Properties": {
                        "Name": "ws",
                        "ProtocolType": "WEBSOCKET",
                        "Tags": {"barkctl:stage": "local"},
                    },
                },
                "DbSecret": dict(SECRET, Properties=dict(SECRET["Properties"], Tags=tags)),
            },
            "Outputs": {"AlarmArn": {"Value": {"Fn::GetAtt": ["Alarm", "Arn"]}}},
        }
        cfn = boto3.client("cloudformation")
        cfn.create_stack(StackName="t", TemplateBody=json.dumps(template))
        arn = outputs(cfn, "t")["AlarmArn"]
        cw = boto3.client("cloudwatch")
        self.assertEqual(cw.list_tags_for_resource(ResourceARN=arn)["Tags"], tags)
        # String-typed numbers (as parameters give them) are converted.
        alarm = cw.describe_alarms(AlarmNames=["errors"])["MetricAlarms"][0]
        self.assertEqual((alarm["Period"], alarm["Threshold"]), (300, 1.0))
        api = boto3.client("apigatewayv2").get_apis()["Items"][0]
        self.assertEqual(api["Tags"], {"barkctl:stage": "local"})
        secret = boto3.client("secretsmanager").describe_secret(SecretId="app/local/postgres/credentials")
        self.assertEqual(secret["Tags"], tags)


if __name__ == "__main__":
    unittest.main(verbosity=2)
